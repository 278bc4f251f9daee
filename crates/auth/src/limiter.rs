//! Failed authentication attempts, counted per source address in a fixed window. Past the
//! limit, the source is refused (HTTP 429) until the window ends. The table is bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed authentication attempts per source address within a window; over the limit, a source is refused until the window passes.
pub struct FailureLimiter {
    limit: u32,
    window: Duration,
    max_sources: usize,
    table: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    /// A limiter allowing `limit` failures per source per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        FailureLimiter {
            limit,
            window,
            max_sources: 65_536,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(seconds to wait)` when `ip` is over the limit.
    pub fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let (start, n) = t.get(&ip)?;
        let elapsed = start.elapsed();
        (*n >= self.limit && elapsed < self.window)
            .then(|| (self.window - elapsed).as_secs().max(1))
    }

    /// Count one failure from `ip`; returns the failures in the current window.
    pub fn fail(&self, ip: IpAddr) -> u32 {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if t.len() >= self.max_sources {
            let window = self.window;
            t.retain(|_, (start, _)| start.elapsed() < window);
            if t.len() >= self.max_sources {
                t.clear();
            }
        }
        let e = t.entry(ip).or_insert((Instant::now(), 0));
        if e.0.elapsed() >= self.window {
            *e = (Instant::now(), 0);
        }
        e.1 += 1;
        e.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_and_forgets_after_the_window() {
        let l = FailureLimiter::new(3, Duration::from_millis(200));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.blocked(ip).is_none());
            l.fail(ip);
        }
        assert!(l.blocked(ip).is_some());
        assert!(l.blocked(other).is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(l.blocked(ip).is_none());
    }
}
