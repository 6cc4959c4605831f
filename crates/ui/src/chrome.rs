//! What every page's frame shows: the title, the navigation, who is
//! signed in and the form token their actions carry.

use crate::api::Viewer;
use crate::Ui;

/// The frame of a page (the `c` of every template).
pub struct Chrome {
    /// The page's title (escaped by the template).
    pub title: String,
    /// Which navigation entry is current: `repos`, `storage`, `live`.
    pub nav: &'static str,
    /// The signed-in user's name, when known.
    pub user: Option<String>,
    /// Whether a UI session is open (a sign-out button is shown).
    pub session: bool,
    /// Whether sign-in exists at all (the registry has authentication).
    pub auth: bool,
    /// Whether the viewer presents any credential.
    pub signed_in: bool,
    /// The token forms carry (see [`crate::session::Keys::form_token`]).
    pub token: String,
}

impl Chrome {
    /// The frame for `viewer` on a page titled `title`.
    pub fn new(ui: &Ui, viewer: &Viewer, title: impl Into<String>, nav: &'static str) -> Chrome {
        Chrome {
            title: title.into(),
            nav,
            user: viewer.name.clone(),
            session: viewer.session,
            auth: ui.auth,
            signed_in: viewer.signed_in(),
            token: form_token(ui, viewer),
        }
    }
}

/// The form token for `viewer`'s session (or for no session).
pub fn form_token(ui: &Ui, viewer: &Viewer) -> String {
    let session = crate::session::cookie_value(&viewer.parts().headers).unwrap_or_default();
    ui.keys.form_token(&session)
}
