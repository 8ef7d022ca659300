//! The pure half of triggers: which listed objects are new to a trigger, and when its window
//! fires.

use crate::events::RESCAN;

/// A trigger's time bounds: what counts from `since` on, and the newest item seen (`cursor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub since: i64,
    pub cursor: i64,
}

impl Bounds {
    /// Items older than this are not looked at again (ms): the trigger's start, or a rescan
    /// before its cursor (an object put a little before a listing can show up in the next).
    pub fn start(self) -> i64 {
        self.since.max(self.cursor - RESCAN)
    }

    /// [`Self::start`] for objects of a listing: S3 keeps last-modified times to the second, so
    /// an object put in the second the trigger started counts (one put just before it may too).
    pub fn listing_start(self) -> i64 {
        (self.since - self.since.rem_euclid(1000)).max(self.cursor - RESCAN)
    }
}

/// How a trigger's pending items become one execution: the first pending item opens a window;
/// it fires `delay` after that (landings: the objects of a burst arrive together) and never
/// sooner than `spacing` after the trigger's previous firing (at most one execution per
/// window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub delay: i64,
    pub spacing: i64,
}

impl Window {
    /// A landing trigger's window of `seconds`: it waits the window out, once per window.
    pub fn debounce(seconds: u64) -> Self {
        let ms = seconds as i64 * 1000;
        Self {
            delay: ms,
            spacing: ms,
        }
    }

    /// A drift trigger's: it fires at once, at most once per `seconds`.
    pub fn throttle(seconds: u64) -> Self {
        Self {
            delay: 0,
            spacing: seconds as i64 * 1000,
        }
    }

    /// Whether the window opened by the first pending item (seen at `first_seen`) fires at
    /// `now`, given the previous firing's time.
    pub fn fires(self, first_seen: i64, last_fire: Option<i64>, now: i64) -> bool {
        now >= first_seen + self.delay && last_fire.is_none_or(|last| now >= last + self.spacing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_debounced_window_waits_for_the_burst_and_spaces_firings() {
        let window = Window::debounce(60);
        assert!(!window.fires(1_000, None, 60_999));
        assert!(window.fires(1_000, None, 61_000));
        // A firing at 61 s: items seen right after it wait for their own window, and for 60 s
        // after the firing.
        assert!(!window.fires(62_000, Some(61_000), 120_000));
        assert!(window.fires(62_000, Some(61_000), 122_000));
    }

    #[test]
    fn a_throttled_window_fires_at_once_but_once_per_spacing() {
        let window = Window::throttle(3600);
        assert!(window.fires(5_000, None, 5_000));
        assert!(!window.fires(10_000, Some(5_000), 3_604_999));
        assert!(window.fires(10_000, Some(5_000), 3_605_000));
    }

    #[test]
    fn the_rescan_reaches_back_from_the_cursor_but_not_before_the_start() {
        let bounds = Bounds {
            since: 1_000,
            cursor: 1_000,
        };
        assert_eq!(bounds.start(), 1_000);
        let bounds = Bounds {
            since: 1_000,
            cursor: 10 * RESCAN,
        };
        assert_eq!(bounds.start(), 9 * RESCAN);
        let bounds = Bounds {
            since: 1_700_000_000_250,
            cursor: 1_700_000_000_250,
        };
        assert_eq!(bounds.start(), 1_700_000_000_250);
        assert_eq!(bounds.listing_start(), 1_700_000_000_000);
    }
}
