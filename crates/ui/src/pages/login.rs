//! Signing in and out (see [`crate::session`] for what the cookie holds).

use crate::chrome::Chrome;
use crate::form::{self, Form};
use crate::respond;
use crate::session;
use crate::{Page, Ui, UiState};
use askama::Template;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use base64::Engine;
use http::{header, HeaderValue, Method, StatusCode};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    next: String,
    message: Option<String>,
}

/// Where to go after signing in: a UI page of ours, never another site
/// (`//host` and `/\host` are other sites to a browser).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && !n.contains("//")
                && !n.contains('\\')
                && n.len() < 2048
                && !n.chars().any(|c| c.is_control()) =>
        {
            n.to_string()
        }
        _ => "/ui/".into(),
    }
}

fn login_page(
    ui: &Ui,
    viewer: &crate::api::Viewer,
    next: String,
    message: Option<String>,
    status: StatusCode,
) -> Page {
    let page = LoginPage {
        c: Chrome::new(ui, viewer, "Sign in", ""),
        next,
        message,
    };
    respond::html(status, page.render())
}

/// `GET /ui/login`.
pub async fn form(State(ui): UiState, req: Request) -> Page {
    let query = req.uri().query().unwrap_or_default().to_string();
    let viewer = crate::viewer(&ui, req);
    let next = safe_next(super::query_param(&query, "next").as_deref());
    if !ui.auth {
        return respond::redirect(&next);
    }
    login_page(&ui, &viewer, next, None, StatusCode::OK)
}

/// `POST /ui/login`: the credential is checked by the registry itself
/// (`GET /v2/` with it, through the guard, throttling included); a
/// session is opened only when it holds.
pub async fn submit(State(ui): UiState, req: Request) -> Page {
    let (parts, body) = req.into_parts();
    let form = Form::read(body).await;
    // The sign-in form is checked as viewed by nobody: the credential in
    // it is what is being tried.
    let mut anonymous = parts.clone();
    anonymous.headers.remove(header::AUTHORIZATION);
    anonymous.headers.remove(header::COOKIE);
    let viewer = crate::api::Viewer::new(anonymous.clone(), None, false);
    let form = match form {
        Ok(f) => f,
        Err(why) => return respond::error(&ui, &viewer, StatusCode::BAD_REQUEST, &why),
    };
    let next = safe_next(form.get("next"));
    if !session::same_origin(&parts.headers) {
        return respond::error(
            &ui,
            &viewer,
            StatusCode::FORBIDDEN,
            "refused: the form was not sent from this registry's own pages",
        );
    }
    // Without authentication there is nothing to sign in to.
    if !ui.auth {
        return respond::redirect(&next);
    }
    let (Some(user), Some(password)) = (form.get("user"), form.get("password")) else {
        return login_page(
            &ui,
            &viewer,
            next,
            Some("enter a user name and a password".into()),
            StatusCode::BAD_REQUEST,
        );
    };
    if user.is_empty() || user.contains(':') || password.is_empty() {
        return login_page(
            &ui,
            &viewer,
            next,
            Some("enter a user name (without ':') and a password".into()),
            StatusCode::BAD_REQUEST,
        );
    }
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let Ok(value) = HeaderValue::from_str(&basic) else {
        return login_page(
            &ui,
            &viewer,
            next,
            Some("the user name or password holds characters that cannot be sent".into()),
            StatusCode::BAD_REQUEST,
        );
    };
    let trying = crate::api::Viewer::new(anonymous, Some(value), false);
    let resp = ui.api.send(&trying, Method::GET, "/v2/", &[]).await;
    match resp.status() {
        s if s.is_success() => {}
        StatusCode::TOO_MANY_REQUESTS => {
            return login_page(
                &ui,
                &viewer,
                next,
                Some("too many failed attempts: wait a minute and try again".into()),
                StatusCode::TOO_MANY_REQUESTS,
            )
        }
        StatusCode::UNAUTHORIZED => {
            return login_page(
                &ui,
                &viewer,
                next,
                Some("that user name and password were not accepted".into()),
                StatusCode::UNAUTHORIZED,
            )
        }
        s => {
            return login_page(
                &ui,
                &viewer,
                next,
                Some(format!(
                    "the registry could not check them ({s}): try again"
                )),
                StatusCode::SERVICE_UNAVAILABLE,
            )
        }
    }
    let Some(sealed) = ui.keys.seal(&basic) else {
        return login_page(
            &ui,
            &viewer,
            next,
            Some("that credential is too long for a browser session".into()),
            StatusCode::BAD_REQUEST,
        );
    };
    let cookie = session::set_cookie(Some(&sealed), ui.keys.lifetime, ui.tls);
    let mut resp = respond::redirect(&next);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// `POST /ui/logout`: the cookie is dropped.
pub async fn logout(State(ui): UiState, req: Request) -> Page {
    let (parts, body) = req.into_parts();
    let viewer = crate::viewer_of(&ui, parts.clone());
    let form = match Form::read(body).await {
        Ok(f) => f,
        Err(why) => return respond::error(&ui, &viewer, StatusCode::BAD_REQUEST, &why),
    };
    if let Err(why) = form::may_act(&ui, &parts.headers, &form) {
        return respond::error(&ui, &viewer, StatusCode::FORBIDDEN, why);
    }
    let cookie = session::set_cookie(None, ui.keys.lifetime, ui.tls);
    let mut resp = respond::redirect("/ui/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_our_pages() {
        assert_eq!(safe_next(Some("/ui/r/a?x=1")), "/ui/r/a?x=1");
        for bad in [
            "//evil.example/",
            "/ui//evil",
            "https://evil.example/ui/",
            "/ui/\\evil",
            "/v2/",
            "/ui/\nx",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/ui/");
    }
}
