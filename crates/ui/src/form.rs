//! Reading the UI's own forms (`application/x-www-form-urlencoded`),
//! bounded, and the checks every state-changing form passes.

use crate::session;
use crate::Ui;
use axum::body::Body;

/// Largest form body read (a user name, a password or API key, a token).
const MAX_FORM: usize = 16 << 10;

/// A posted form's fields.
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Reads `body`: `Err` names what is wrong with it.
    pub async fn read(body: Body) -> Result<Form, String> {
        let bytes = axum::body::to_bytes(body, MAX_FORM)
            .await
            .map_err(|_| format!("the form is larger than {} KiB", MAX_FORM >> 10))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| "the form is not UTF-8".to_string())?;
        let mut fields = Vec::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                pavilion_oci::percent::decode(&s.replace('+', " "))
                    .ok_or_else(|| "the form is not URL-encoded".to_string())
            };
            fields.push((decode(k)?, decode(v)?));
        }
        Ok(Form(fields))
    }

    /// The one value of `key` (a field given twice is refused: which one
    /// a check read and which one was acted on must not differ).
    pub fn get(&self, key: &str) -> Option<&str> {
        let mut it = self.0.iter().filter(|(k, _)| k == key);
        let first = it.next()?;
        if it.next().is_some() {
            return None;
        }
        Some(&first.1)
    }
}

/// Whether a state-changing form may act: sent from our own pages, and
/// carrying the token of the session it acts for.
pub fn may_act(ui: &Ui, headers: &http::HeaderMap, form: &Form) -> Result<(), &'static str> {
    if !session::same_origin(headers) {
        return Err("refused: the form was not sent from this registry's own pages");
    }
    let cookie = session::cookie_value(headers).unwrap_or_default();
    match form.get("token") {
        Some(t) if ui.keys.form_token_holds(&cookie, t) => Ok(()),
        _ => Err("refused: the form's token is missing or stale; reload the page and try again"),
    }
}
