//! The web UI: server-rendered pages (askama templates in `templates/`) that read
//! and work without JavaScript; `assets/app.js` only enhances them (theme, time
//! zones, live output, the editor's preview). Every asset is embedded in the binary;
//! nothing is fetched from elsewhere.
//!
//! URLs are relative: every page carries `<base href>` pointing at the UI's root
//! (`./`, `../`, …, from the request's own depth), and every link, form and asset is
//! written relative to it. The UI therefore works under any reverse-proxy prefix
//! (`/kairos/…` proxied to `/…`) with no setting; `--http-base-path` only scopes
//! the sign-in cookie.
//!
//! Reads come from this node's state (no read barrier: a page may be a few
//! milliseconds behind the leader, and says which node rendered it); actions go
//! through [`Core`] like the API's, forwarded to the leader from a follower, and are
//! authorized as the caller (the HTTP layer's check, plus the admin check for
//! membership). Lists are paged on the server: a page never carries more than one
//! page of jobs or executions.

mod cluster;
mod executions;
mod jobs;
mod words;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use kairos_common::access::{Permission, Role};
use serde::Deserialize;

use crate::auth::Principal;
use crate::core::Core;

const APP_CSS: &str = include_str!("../../../assets/app.css");
const APP_JS: &str = include_str!("../../../assets/app.js");

/// Changes whenever an asset does, so browsers may cache them for ever.
fn asset_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            format!("{APP_CSS}{APP_JS}").as_bytes(),
        );
        digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

pub fn routes() -> Router<Arc<Core>> {
    Router::new()
        .route("/", get(cluster::dashboard))
        .route("/cluster", get(cluster::cluster))
        .route("/cluster/transfer", post(cluster::transfer))
        .route("/jobs", get(jobs::list))
        .route("/jobs/bulk", post(jobs::bulk))
        .route("/jobs/new", get(jobs::new_job))
        .route("/jobs/save", post(jobs::save))
        .route("/jobs/preview", post(jobs::preview))
        .route("/jobs/{name}", get(jobs::page_handler))
        .route("/jobs/{name}/edit", get(jobs::edit))
        .route("/jobs/{name}/run", post(jobs::run))
        .route("/jobs/{name}/pause", post(jobs::pause))
        .route("/jobs/{name}/resume", post(jobs::resume))
        .route("/jobs/{name}/delete", post(jobs::delete))
        .route("/jobs/{name}/backfill", post(jobs::backfill))
        .route("/executions", get(executions::list))
        .route("/executions/{id}", get(executions::page_handler))
        .route("/executions/{id}/output.txt", get(executions::raw))
        .route("/executions/{id}/live", get(executions::live))
        .route("/executions/{id}/cancel", post(executions::cancel))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
}

/// Paths anyone may open: the sign-in page and the assets it needs.
pub fn is_open(path: &str) -> bool {
    path == "/login" || path.starts_with("/assets/")
}

/// Whether a refused request came from a person's browser on a UI page (it is
/// sent the sign-in page rather than a plain-text refusal).
pub fn is_ui_page(path: &str) -> bool {
    !(path.starts_with("/v1") || path == "/metrics" || path.starts_with("/health"))
}

async fn css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

/// What every page's frame shows: where the UI's root is, who is signed in and
/// what they may do, which node answered.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub root: String,
    /// This page's path from the root (for in-page anchors under `<base>`).
    pub here: String,
    pub title: String,
    pub nav: &'static str,
    pub asset_version: &'static str,
    pub node: u64,
    pub leader: u64,
    pub signed_in: bool,
    pub who: String,
    pub can_write: bool,
    pub can_admin: bool,
}

/// `./` for a page at the root or one level down, `../` per further level.
fn root_of(path: &str) -> String {
    let depth = path.trim_start_matches('/').split('/').count();
    if depth <= 1 {
        "./".to_string()
    } else {
        "../".repeat(depth - 1)
    }
}

/// What the caller may do, from the principal the HTTP layer attached.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Option<Principal>,
    pub path: String,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller {
            principal: parts.extensions.get::<Principal>().cloned(),
            path: parts.uri.path().to_string(),
        })
    }
}

impl Caller {
    pub fn may(&self, permission: Permission) -> bool {
        self.principal
            .as_ref()
            .is_some_and(|p| p.role.allows(permission))
    }

    pub fn chrome(&self, core: &Core, title: impl Into<String>, nav: &'static str) -> Chrome {
        let s = core.status();
        // Signed in = by a token (the cookie): only then is there a way to sign out.
        let (signed_in, who) = match &self.principal {
            Some(p) if p.via == crate::auth::Via::Token => (true, p.to_string()),
            _ => (false, String::new()),
        };
        Chrome {
            root: root_of(&self.path),
            here: self.path.trim_start_matches('/').to_string(),
            title: title.into(),
            nav,
            asset_version: asset_version(),
            node: s.id,
            leader: s.leader_id,
            signed_in,
            who,
            can_write: self.may(Permission::Write),
            can_admin: self.may(Permission::Admin),
        }
    }

    /// A path relative to this page's directory that leads to `target` (a path
    /// from the UI's root): for redirects after a form, which must work under any
    /// proxy prefix.
    pub fn redirect(&self, target: &str) -> Response {
        Redirect::to(&format!("{}{target}", root_of(&self.path))).into_response()
    }
}

/// A rendered page, or the error page.
pub fn page(t: impl Template) -> Response {
    page_as(StatusCode::OK, t)
}

/// A rendered page answered with `code` (a refusal shown as a page); a page that
/// cannot be rendered is a 500 whatever `code` was.
pub fn page_as(code: StatusCode, t: impl Template) -> Response {
    match t.render() {
        Ok(html) => (code, Html(html)).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the page could not be rendered: {e}\n"),
        )
            .into_response(),
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    chrome: Chrome,
    heading: String,
    text: String,
    back: String,
}

/// An error or refusal, as a page with a way back.
pub fn message(
    caller: &Caller,
    core: &Core,
    code: StatusCode,
    heading: &str,
    text: impl Into<String>,
    back: &str,
) -> Response {
    page_as(
        code,
        MessagePage {
            chrome: caller.chrome(core, heading, ""),
            heading: heading.to_string(),
            text: text.into(),
            back: back.to_string(),
        },
    )
}

/// What a service call answered with, as a page: the gRPC code as an HTTP status,
/// the message as the text (it names the field for a bad argument).
pub fn refused(caller: &Caller, core: &Core, s: &tonic::Status, back: &str) -> Response {
    message(
        caller,
        core,
        super::http_status(s.code()),
        "That did not work",
        s.message().to_string(),
        back,
    )
}

/// A refusal of the caller's role, before anything is attempted.
pub fn forbidden(caller: &Caller, core: &Core, needs: &str, back: &str) -> Response {
    message(
        caller,
        core,
        StatusCode::FORBIDDEN,
        "Not allowed",
        format!("this needs the {needs} permission, which your role does not have"),
        back,
    )
}

/// A timestamp as the UI shows it: RFC 3339 in the markup, UTC in the text (the
/// script rewrites it in the chosen zone).
#[derive(Debug, Clone)]
pub struct When {
    pub iso: String,
    pub text: String,
}

impl When {
    pub fn of(t: DateTime<Utc>) -> When {
        When {
            iso: t.to_rfc3339_opts(SecondsFormat::Millis, true),
            text: t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }
    }

    pub fn of_ts(t: &Option<kairos_proto::Timestamp>) -> Option<When> {
        t.as_ref().map(|t| When::of(crate::time::dt_from_ts(t)))
    }
}

/// A time typed in a form: `2026-12-01T00:00[:00]` (a `datetime-local` input, read
/// as UTC) or RFC 3339. The error names `field`.
pub fn instant(field: &str, text: &str) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(t, format) {
            return Ok(n.and_utc());
        }
    }
    Err(format!(
        "{field}: {t:?} is not a time such as 2026-12-01T00:00 (UTC) or RFC 3339"
    ))
}

/// A duration as people read it: `850 ms`, `12.4 s`, `3 min 20 s`, `2 h 5 min`.
pub fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{} h {} min", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

/// Percent-encodes a query value or path segment (RFC 3986 unreserved kept).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---- sign-in ----

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    error: String,
}

async fn login_page(State(core): State<Arc<Core>>, caller: Caller) -> Response {
    page(LoginPage {
        chrome: caller.chrome(&core, "Sign in", ""),
        error: String::new(),
    })
}

/// The sign-in page in answer to a refused page request (401), so a person
/// without credentials gets a way in rather than a bare refusal.
pub fn login_required(core: &Core, req: &Request, why: &str) -> Response {
    let caller = Caller {
        principal: None,
        path: req.uri().path().to_string(),
    };
    page_as(
        StatusCode::UNAUTHORIZED,
        LoginPage {
            chrome: caller.chrome(core, "Sign in", ""),
            error: why.to_string(),
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// Checks the token, then keeps it in an HttpOnly, SameSite=Strict cookie (so other
/// sites can neither read it nor make this browser send it with their forms).
async fn login(
    State(core): State<Arc<Core>>,
    caller: Caller,
    Form(form): Form<LoginForm>,
) -> Response {
    let token = form.token.trim().to_string();
    let mut headers = axum::http::HeaderMap::new();
    let checked = format!("Bearer {token}").parse().ok().map(|v| {
        headers.insert(header::AUTHORIZATION, v);
        core.auth.authenticate(&headers, None)
    });
    match checked {
        Some(Ok(p)) if p.role != Role::Executor && p.role != Role::Scheduler => {
            let secure = if core.server_tls.is_some() {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{}={token}; Path={}; HttpOnly; SameSite=Strict{secure}",
                super::auth::TOKEN_COOKIE,
                core.config.http_base_path
            );
            let mut r = caller.redirect("");
            if let Ok(v) = cookie.parse() {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Some(Ok(p)) => page_as(
            StatusCode::FORBIDDEN,
            LoginPage {
                chrome: caller.chrome(&core, "Sign in", ""),
                error: format!("a {} token cannot use the web UI", p.role),
            },
        ),
        _ => page_as(
            StatusCode::UNAUTHORIZED,
            LoginPage {
                chrome: caller.chrome(&core, "Sign in", ""),
                error: "that token is not valid (mistyped, revoked, or of another group)".into(),
            },
        ),
    }
}

async fn logout(State(core): State<Arc<Core>>, caller: Caller) -> Response {
    let mut r = caller.redirect("login");
    let cookie = format!(
        "{}=; Path={}; HttpOnly; SameSite=Strict; Max-Age=0",
        super::auth::TOKEN_COOKIE,
        core.config.http_base_path
    );
    if let Ok(v) = cookie.parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_found_from_the_page_depth() {
        assert_eq!(root_of("/"), "./");
        assert_eq!(root_of("/jobs"), "./");
        assert_eq!(root_of("/jobs/"), "../");
        assert_eq!(root_of("/jobs/nightly"), "../");
        assert_eq!(root_of("/executions/12/output.txt"), "../../");
    }

    #[test]
    fn durations_and_encoding_read_well() {
        assert_eq!(human_duration(850), "850 ms");
        assert_eq!(human_duration(12_400), "12.4 s");
        assert_eq!(human_duration(200_000), "3 min 20 s");
        assert_eq!(enc("team=billing, x"), "team%3Dbilling%2C%20x");
    }
}
