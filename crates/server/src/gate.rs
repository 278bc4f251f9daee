//! The gate in front of every route but `/upcheck`: who is calling (token by Bearer or HTTP
//! Basic, or a client certificate, or, for a request that presents neither, a source credential
//! naming its address), from where (socket peer; `X-Forwarded-For` only from a
//! configured trusted proxy), and whether their policy allows the route's scope. The scope comes
//! from the group the route is declared in ([`crate::serve::router`]); a path in no group is
//! never served. Credentials are never logged or echoed.
//!
//! Failed attempts are limited per source, and only failed attempts: a valid credential is never
//! refused because someone else at the same address guessed wrong. Denials at the gate (no valid
//! credential, or one outside its scope, network, lifetime, or suspended) are counted per source,
//! reason and credential and written to the audit log once per interval, so no traffic can grow
//! the log faster than that.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use signward_auth::{Action, Cidr, Scope};
use zeroize::Zeroizing;

use crate::error::ApiError;
use signward_engine::access::Gate;
use signward_engine::state::AppState;
use signward_engine::Rejection;

/// The caller's address as the gate resolved it (peer, or trusted proxy's `X-Forwarded-For`).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

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
    // From the right: the hops our trusted proxies appended, then the first one they did not
    // vouch for. What the client wrote further left is never read. A malformed hop before an
    // untrusted one leaves the proxy's own address (which never matches a source credential:
    // see `gate`).
    for part in xff.rsplit(',').take(32) {
        match part.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => continue,
            Ok(ip) => return ip,
            Err(_) => return peer,
        }
    }
    peer
}

/// Headers that say the request was forwarded. A source credential is never used for a request
/// that carries one from a peer that is not a trusted proxy: a forwarder on the signer's host
/// (a proxy without `--trusted-proxy`, `ssh -L`, socat) would otherwise turn every caller it
/// serves into its own loopback address.
fn forwarded(headers: &HeaderMap) -> bool {
    ["forwarded", "x-forwarded-for", "x-real-ip", "via"]
        .iter()
        .any(|h| headers.contains_key(*h))
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

/// Middleware for the routes of one scope: authenticate and check the scope; put the caller in
/// the request.
pub async fn gate(
    State((state, scope)): State<(Arc<AppState>, Scope)>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let Some(gate) = &state.gate() else {
        // Auth disabled (accepted on loopback only).
        req.extensions_mut().insert(ClientIp(peer));
        return next.run(req).await;
    };
    let ip = client_ip(peer, req.headers(), &gate.trusted_proxies);
    req.extensions_mut().insert(ClientIp(ip));
    // A token when one is presented; otherwise the verified client certificate (mTLS);
    // otherwise, for a request that presents nothing at all, the source credential naming the
    // caller's address (for clients that cannot send a credential). A credential that is
    // presented and fails never falls back to the address.
    let presented = credential(req.headers());
    let cert = req.extensions().get::<crate::tls::PeerCert>().cloned();
    let caller = match (presented, cert) {
        (Some(t), _) => gate.tokens.authenticate(&t),
        (None, Some(c)) => gate.tokens.authenticate_cert(&c.0),
        (None, None) if req.headers().contains_key(header::AUTHORIZATION) => None,
        // Never through a proxy: the address a proxy reports is not the caller's to prove,
        // and a request a forwarder relayed is not from the address it arrives from.
        (None, None) if gate.trusted_proxies.iter().any(|c| c.contains(peer)) => None,
        (None, None) if forwarded(req.headers()) => None,
        (None, None) => gate.tokens.authenticate_source(ip),
    };
    let Some(caller) = caller else {
        // The Keymanager spec: 401 when no token is found, 403 when one is found but invalid.
        // Web3Signer's routes keep 401 for both, as its clients expect.
        let presented = req.headers().contains_key(header::AUTHORIZATION)
            || req.extensions().get::<crate::tls::PeerCert>().is_some();
        let refusal = if presented && scope == Scope::Keymanager {
            ApiError::InvalidCredential
        } else {
            ApiError::Unauthorized
        };
        return refuse_unknown(&state, gate, ip, refusal);
    };
    let checked = signward_auth::authorize(
        Some(&caller),
        Action::Enter {
            scope,
            peer: ip,
            now: now(),
        },
    );
    if let Err(denied) = checked {
        // Tallied like unknown credentials: an expired or suspended token sent in a loop adds
        // one record a minute, not one per request.
        if gate.denials.count(ip, denied.code(), Some(&caller.name)) {
            tracing::warn!(caller = %caller.name, source = %ip, scope = %scope, reason = denied.code(), "access denied");
        }
        return ApiError::Engine(Rejection::Forbidden(denied)).into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// No valid credential: 429 while the source is over its failure limit, else `refusal` (401, or
/// 403 for an invalid credential presented to the Keymanager API) and one more failure counted. Either way the denial is tallied, not written one by one.
fn refuse_unknown(state: &AppState, gate: &Gate, ip: IpAddr, refusal: ApiError) -> Response {
    state
        .metrics()
        .auth_failures
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Some(wait) = gate.limiter.blocked(ip) {
        if gate
            .denials
            .count(ip, ApiError::TooManyFailures.code(), None)
        {
            tracing::warn!(source = %ip, "authentication refused: too many failures");
        }
        let mut r = ApiError::TooManyFailures.into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let failures = gate.limiter.fail(ip);
    if gate.denials.count(ip, refusal.code(), None) {
        tracing::warn!(source = %ip, failures, "authentication failed");
    }
    let mut r = refusal.into_response();
    if refusal == ApiError::Unauthorized {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"signward\""),
        );
    }
    r
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
        // What the client wrote left of the hops our proxies appended is never read, however
        // many hops it writes.
        let spoofed = format!("{}7.7.7.7, 10.0.0.1", "10.0.0.5, ".repeat(40));
        h.insert("x-forwarded-for", HeaderValue::from_str(&spoofed).unwrap());
        assert_eq!(
            client_ip("10.0.0.1".parse().unwrap(), &h, &trusted),
            "7.7.7.7".parse::<IpAddr>().unwrap()
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
