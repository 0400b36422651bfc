//! The server's one clock: every timer, rate window, throttle and expiry reads it, so
//! that tests run them on paused tokio time (`tokio::time::pause`) instead of waiting.
//!
//! Monotonic instants are tokio's ([`Instant`]): they follow paused and advanced time.
//! Token expiry is counted in unix seconds, so the clock also says what unix time it is
//! ([`Clock::unix_ms`]): the system's wall clock by default, or, with
//! [`Clock::following_tokio`], a start point advanced by tokio time (tests). Timestamps
//! sent to clients (`server_ts`, `updated_ts`) stay on the wall clock.

use std::time::Duration;

/// The monotonic instant of every server timer and window.
pub(super) type Instant = tokio::time::Instant;

/// Where unix time comes from (see the module header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The system's wall clock.
    #[default]
    System,
    /// `unix_ms` at `start`, advanced by tokio time since: paused time moves it.
    FollowingTokio { unix_ms: u64, start: Instant },
}

impl Clock {
    /// Unix time from now on follows tokio time, starting at the wall clock's now.
    pub fn following_tokio() -> Clock {
        Clock::FollowingTokio {
            unix_ms: crate::protocol::now_ms(),
            start: Instant::now(),
        }
    }

    /// Now, for timers and windows.
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// Unix time in milliseconds, for token expiry.
    pub fn unix_ms(&self) -> u64 {
        match self {
            Clock::System => crate::protocol::now_ms(),
            Clock::FollowingTokio { unix_ms, start } => {
                let elapsed: Duration = start.elapsed();
                unix_ms + elapsed.as_millis() as u64
            }
        }
    }

    /// Unix time in whole seconds.
    pub fn unix_secs(&self) -> u64 {
        self.unix_ms() / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn unix_time_can_follow_paused_time() {
        let clock = Clock::following_tokio();
        let before = clock.unix_ms();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.unix_ms() - before, 3_600_000);
        let system = Clock::System.unix_ms();
        assert!(system.abs_diff(crate::protocol::now_ms()) < 1000);
    }
}
