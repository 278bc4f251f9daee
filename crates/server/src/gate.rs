//! The gate in front of every route but `/upcheck`: who is calling (token by Bearer or HTTP
//! Basic), from where (socket peer; `X-Forwarded-For` only from a configured trusted proxy), and
//! whether their policy allows the route's scope. Failed attempts are limited per source.
//! Credentials are never logged or echoed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use signward_auth::limiter::FailureLimiter;
use signward_auth::store::TokenStore;
use signward_auth::{Cidr, Scope};
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::state::AppState;

/// The caller's address as the gate resolved it (peer, or trusted proxy's `X-Forwarded-For`).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Authentication and authorisation settings of a running server.
pub struct Gate {
    pub tokens: TokenStore,
    pub limiter: FailureLimiter,
    pub trusted_proxies: Vec<Cidr>,
}

/// The scope a path needs; `None` for open paths.
pub fn required_scope(path: &str) -> Option<Scope> {
    if path.starts_with("/api/v1/eth2/sign/") || path == "/" {
        Some(Scope::Sign)
    } else if path == "/api/v1/eth2/publicKeys" {
        Some(Scope::PublicKeys)
    } else if path == "/healthcheck" || path == "/metrics" {
        Some(Scope::Metrics)
    } else if path.starts_with("/eth/v1/") {
        Some(Scope::Keymanager)
    } else if path.starts_with("/admin/") {
        Some(Scope::Admin)
    } else {
        None
    }
}

/// The caller's address: the socket peer, or the nearest untrusted hop of `X-Forwarded-For`
/// when the peer is a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(xff) = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .next_back()
    else {
        return peer;
    };
    let mut hops: Vec<IpAddr> = Vec::new();
    for part in xff.split(',') {
        match part.trim().parse() {
            Ok(ip) => hops.push(ip),
            Err(_) => return peer,
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip))
        .unwrap_or(peer)
}

/// The presented token: `Authorization: Bearer TOKEN`, or Basic with the token as password (or as
/// user name when the password is empty), as validator clients send `http://name:token@host`.
fn credential(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Zeroizing::new(rest.trim().to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?,
        );
        let text = std::str::from_utf8(&decoded).ok()?;
        let (user, pass) = text.split_once(':')?;
        let token = if pass.is_empty() { user } else { pass };
        return Some(Zeroizing::new(token.to_string()));
    }
    None
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Middleware: authenticate and check the route's scope; put the caller in the request.
pub async fn gate(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let Some(scope) = required_scope(req.uri().path()) else {
        return next.run(req).await;
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let Some(gate) = &state.gate else {
        // Auth disabled (accepted on loopback only).
        req.extensions_mut().insert(ClientIp(peer));
        return next.run(req).await;
    };
    let ip = client_ip(peer, req.headers(), &gate.trusted_proxies);
    req.extensions_mut().insert(ClientIp(ip));
    let route = format!("{} {}", req.method(), req.uri().path());
    if let Some(wait) = gate.limiter.blocked(ip) {
        tracing::warn!(source = %ip, "authentication refused: too many failures");
        audit_denial(&state, None, ip, &route, ApiError::TooManyFailures.code()).await;
        let mut r = ApiError::TooManyFailures.into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    // A token when one is presented; otherwise the verified client certificate (mTLS).
    let caller = match credential(req.headers()) {
        Some(t) => gate.tokens.authenticate(&t),
        None => req
            .extensions()
            .get::<crate::tls::PeerCert>()
            .and_then(|c| gate.tokens.authenticate_cert(&c.0)),
    };
    let Some(caller) = caller else {
        let failures = gate.limiter.fail(ip);
        state
            .metrics
            .auth_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(source = %ip, path = req.uri().path(), failures, "authentication failed");
        audit_denial(&state, None, ip, &route, ApiError::Unauthorized.code()).await;
        let mut r = ApiError::Unauthorized.into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"signward\""),
        );
        return r;
    };
    if let Err(denied) = caller.policy.check_access(scope, ip, now()) {
        tracing::warn!(caller = %caller.name, source = %ip, scope = %scope, reason = denied.code(), "access denied");
        audit_denial(&state, Some(&caller.name), ip, &route, denied.code()).await;
        return ApiError::Forbidden(denied).into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Record an access denial. A denial is answered whether or not the record could be written
/// (nothing is released either way); a write failure is logged.
async fn audit_denial(
    state: &AppState,
    caller: Option<&str>,
    ip: IpAddr,
    route: &str,
    reason: &str,
) {
    if state.audit.is_some() {
        let record = signward_audit::Record {
            event: "access".into(),
            caller: Some(caller.unwrap_or("-").to_string()),
            peer: Some(ip.to_string()),
            operation: Some(route.to_string()),
            decision: "denied".into(),
            reason: Some(reason.to_string()),
            ..Default::default()
        };
        if let Err(e) = state.journal(record).await {
            tracing::error!(error = %e, "audit record of a denial could not be written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<Cidr> = vec!["10.0.0.1".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 10.0.0.1"),
        );
        assert_eq!(
            client_ip("10.0.0.1".parse().unwrap(), &h, &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip("10.9.9.9".parse().unwrap(), &h, &trusted),
            "10.9.9.9".parse::<IpAddr>().unwrap()
        );
        h.insert("x-forwarded-for", HeaderValue::from_static("garbage"));
        assert_eq!(
            client_ip("10.0.0.1".parse().unwrap(), &h, &trusted),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn bearer_and_basic() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sw_abc"),
        );
        assert_eq!(credential(&h).unwrap().as_str(), "sw_abc");
        // name:token
        let b = base64::engine::general_purpose::STANDARD.encode("vc1:sw_def");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {b}")).unwrap(),
        );
        assert_eq!(credential(&h).unwrap().as_str(), "sw_def");
        let b = base64::engine::general_purpose::STANDARD.encode("sw_ghi:");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {b}")).unwrap(),
        );
        assert_eq!(credential(&h).unwrap().as_str(), "sw_ghi");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Digest x"));
        assert!(credential(&h).is_none());
    }
}
