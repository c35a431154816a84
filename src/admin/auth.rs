//! Bearer tokens, checked on the request head: a request without a valid
//! token is answered before a byte of its body is read.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::metrics::Rejected;
use super::{AdminState, error};

/// The label of the token a change was made with (set by `require_token`).
#[derive(Clone)]
pub struct Caller(pub String);

/// Middleware for every route that changes something.
pub async fn require_token(State(s): State<AdminState>, mut req: Request, next: Next) -> Response {
    match authorize(&s, req.headers()) {
        Ok(label) => {
            req.extensions_mut().insert(Caller(label));
            next.run(req).await
        }
        Err((code, message)) => {
            s.metrics.admin.rejected(Rejected::Unauthorized);
            // The body stays unread; hyper closes the connection rather
            // than read it.
            error(code, message)
        }
    }
}

/// The label of the caller's bearer token, or the response refusing them.
fn authorize(s: &AdminState, headers: &HeaderMap) -> Result<String, (StatusCode, &'static str)> {
    let tokens = s.tokens.load();
    if tokens.is_empty() {
        return Err((
            StatusCode::FORBIDDEN,
            "changes are disabled: set [admin] token_file to enable them",
        ));
    }
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let Some(presented) = presented else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "send Authorization: Bearer <token>",
        ));
    };
    tokens
        .iter()
        .find(|t| constant_time_eq(t.secret.as_bytes(), presented.as_bytes()))
        .map(|t| t.label.clone())
        .ok_or((StatusCode::UNAUTHORIZED, "unknown token"))
}

/// The token of `Bearer <token>`; the scheme is case-insensitive (RFC 9110
/// section 11.1), one or more spaces may follow it.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares without an early exit, so response time says nothing about how
/// much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn the_scheme_is_case_insensitive() {
        for header in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "bEaReR   abc",
            " Bearer abc ",
        ] {
            assert_eq!(bearer(header), Some("abc"), "{header:?}");
        }
        for header in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "abc"] {
            assert_eq!(bearer(header), None, "{header:?}");
        }
    }
}
