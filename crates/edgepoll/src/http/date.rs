//! `Date` field values (RFC 9110 §5.6.7: IMF-fixdate, such as
//! `Sun, 06 Nov 1994 08:49:37 GMT`), made at most once a second.
//!
//! RFC 9110 §6.6.1 asks an origin server with a clock to send `Date` on its
//! 2xx to 4xx responses, and a proxy to add one to a response that comes
//! without. The handler is sans-IO and reads no clock: the loop, with
//! [`ServerOptions::date`](crate::ServerOptions::date) on, hands it the
//! current value each round (`ResponseDates`, as hyper keeps its date per
//! thread), and every final response encoded on the loop's thread
//! without a `Date` of its own gets that one. A sans-IO user, or a service
//! that dates only some responses, keeps a [`DateCache`] and adds the field
//! itself.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

thread_local! {
    /// Whether final responses encoded on this thread that come without
    /// a `Date` get [`STAMP`]: only while a loop dating its responses
    /// runs here. A flag of its own, so that a response of a loop that
    /// does not date costs one load, not a copy of the date.
    static STAMPING: Cell<bool> = const { Cell::new(false) };
    static STAMP: Cell<[u8; 29]> = const { Cell::new([0; 29]) };
}

/// Whether final responses without a `Date` get one (see [`ResponseDates`]).
#[inline]
pub(crate) fn stamping() -> bool {
    STAMPING.get()
}

/// The `Date` a final response without one gets, while [`stamping`].
pub(crate) fn response_stamp() -> Option<[u8; 29]> {
    match STAMPING.get() {
        true => Some(STAMP.get()),
        false => None,
    }
}

fn set_stamp(date: Option<[u8; 29]>) {
    STAMPING.set(date.is_some());
    if let Some(date) = date {
        STAMP.set(date);
    }
}

/// While it lives, the final responses encoded on this thread that carry
/// no `Date` get the one it last read, or none if it was started off:
/// a loop keeps one for its run, on as
/// [`ServerOptions::date`](crate::ServerOptions::date) says, and calls
/// [`refresh`](Self::refresh) each round. On drop, what was there before
/// comes back (a loop run inside another's callback leaves the outer
/// one's as it found it).
#[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
pub(crate) struct ResponseDates {
    /// `None` when off.
    cache: Option<DateCache>,
    before: Option<[u8; 29]>,
}

#[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
impl ResponseDates {
    pub(crate) fn start(now: Instant, on: bool) -> ResponseDates {
        let mut dates = ResponseDates {
            cache: on.then(DateCache::new),
            before: response_stamp(),
        };
        set_stamp(dates.cache.as_mut().map(|cache| *cache.bytes_at(now)));
        dates
    }

    /// The date at `now`, stamped anew only when its second is over.
    #[inline]
    pub(crate) fn refresh(&mut self, now: Instant) {
        if let Some(cache) = &mut self.cache {
            if cache.is_stale(now) {
                set_stamp(Some(*cache.bytes_at(now)));
            }
        }
    }
}

impl Drop for ResponseDates {
    fn drop(&mut self) {
        set_stamp(self.before);
    }
}

/// The current date as a `Date` field's value, read from the wall clock at
/// most once a second: nginx keeps its own the same way, since formatting
/// a date (and, under WasmEdge, each call for the time) costs more than a
/// field.
///
/// ```
/// use edgepoll::http::{DateCache, Response, StatusCode};
/// use std::time::Instant;
/// let mut dates = DateCache::new();
/// let now = Instant::now(); // in a service: `Context::now()`
/// let date = dates.at(now);
/// assert!(date.ends_with(" GMT") && date.len() == 29);
/// let response = Response::new(StatusCode::OK).header("Date", dates.at(now));
/// # let _ = response;
/// ```
#[derive(Clone, Debug, Default)]
pub struct DateCache {
    text: [u8; 29],
    /// When the second `text` names is over (`None`: nothing read yet).
    valid_until: Option<Instant>,
}

impl DateCache {
    /// A cache that reads the clock at its first use.
    pub fn new() -> DateCache {
        DateCache::default()
    }

    /// The date at `now`, a monotonic reading such as the loop's
    /// (`Context::now()`): the wall clock is read again once the second it
    /// last gave is over by `now`. A `now` a little behind the real time
    /// reads it again early, never late.
    pub fn at(&mut self, now: Instant) -> &str {
        // Every byte `imf_fixdate` writes is ASCII.
        std::str::from_utf8(self.bytes_at(now)).unwrap_or_default()
    }

    /// [`at`](Self::at) as bytes of a known length, which a wasm32 build
    /// copies with loads and stores, not `memory.copy` (a call into the
    /// runtime under WasmEdge's AOT code).
    ///
    /// ```
    /// use edgepoll::http::DateCache;
    /// let mut dates = DateCache::new();
    /// let now = std::time::Instant::now();
    /// let owned: Vec<u8> = dates.bytes_at(now).to_vec();
    /// assert_eq!(owned, dates.at(now).as_bytes());
    /// ```
    pub fn bytes_at(&mut self, now: Instant) -> &[u8; 29] {
        if self.is_stale(now) {
            // A clock set before 1970 reads as 1970.
            let wall = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            self.read(now, wall);
        }
        &self.text
    }

    /// Takes the wall clock's `wall` (since 1970), read at `now`: good
    /// until its second is over.
    fn read(&mut self, now: Instant, wall: Duration) {
        self.text = imf_fixdate(wall.as_secs());
        let rest = Duration::from_secs(1) - Duration::from_nanos(u64::from(wall.subsec_nanos()));
        self.valid_until = Some(now + rest);
    }

    /// Whether the second last read is over by `now` (or none was read).
    #[inline]
    fn is_stale(&self, now: Instant) -> bool {
        self.valid_until.is_none_or(|until| now >= until)
    }
}

/// `secs` after 1970-01-01T00:00:00Z as an IMF-fixdate; past the last
/// second of the year 9999, which four digits can write, that second.
pub fn imf_fixdate(secs: u64) -> [u8; 29] {
    const LAST: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let secs = secs.min(LAST);
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[0..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two_digits(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[month as usize - 1]);
    two_digits(&mut out[12..14], year / 100);
    two_digits(&mut out[14..16], year % 100);
    two_digits(&mut out[17..19], of_day / 3600);
    two_digits(&mut out[20..22], of_day / 60 % 60);
    two_digits(&mut out[23..25], of_day % 60);
    out
}

fn two_digits(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// Year, month (1 to 12) and day of the month of a day counted from
/// 1970-01-01: the Gregorian calendar in 400-year cycles of 146 097 days,
/// each year taken from March, so that a leap day falls at a year's end.
fn civil(days: u64) -> (u64, u64, u64) {
    // Days from 0000-03-01 (a cycle's start) to 1970-01-01.
    let from_cycle_start = days + 719_468;
    let (cycle, day_of_cycle) = (from_cycle_start / 146_097, from_cycle_start % 146_097);
    // Years into the cycle: the leap days before this day (one each four
    // years, none each hundred, one again at four hundred) come out first.
    let year_of_cycle =
        (day_of_cycle - day_of_cycle / 1460 + day_of_cycle / 36_524 - day_of_cycle / 146_096) / 365;
    let day_of_year =
        day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    // Months from March: 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31, 29 or 28
    // days, which 153 days each five months fits.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = cycle * 400 + year_of_cycle + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(secs: u64) -> String {
        String::from_utf8(imf_fixdate(secs).to_vec()).unwrap()
    }

    #[test]
    fn known_dates_read_as_rfc_9110_writes_them() {
        assert_eq!(text(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        // RFC 9110 §5.6.7's own example.
        assert_eq!(text(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(text(951_782_399), "Mon, 28 Feb 2000 23:59:59 GMT");
        assert_eq!(text(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(text(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
        assert_eq!(text(253_402_300_799), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(text(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    /// Every day from 1970 to 2500 against a calendar counted a day at a
    /// time, with the leap-year rule written out.
    #[test]
    fn every_day_for_five_centuries_matches_a_calendar_counted_by_days() {
        let leap =
            |y: u64| y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400));
        let (mut year, mut month, mut day, mut weekday) = (1970u64, 1u64, 1u64, 4u64);
        let names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        for days in 0..(2500 - 1970) * 366 {
            if year == 2500 {
                break;
            }
            let expected = format!(
                "{}, {day:02} {} {year} 12:34:56 GMT",
                names[weekday as usize],
                months[month as usize - 1]
            );
            assert_eq!(text(days * 86_400 + 45_296), expected);
            let length = match month {
                2 if leap(year) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            weekday = (weekday + 1) % 7;
            day += 1;
            if day > length {
                (day, month) = (1, month + 1);
                if month > 12 {
                    (month, year) = (1, year + 1);
                }
            }
        }
        assert_eq!(year, 2500);
    }

    #[test]
    fn the_cache_reads_the_clock_again_once_its_second_is_over() {
        let mut dates = DateCache::new();
        let start = Instant::now();
        let first = dates.at(start).to_owned();
        let until = dates.valid_until.unwrap();
        assert!(until > start && until <= start + Duration::from_secs(1));
        // Within the second: the same text, the clock not read.
        dates.text[0] = b'X';
        assert!(dates.at(start).starts_with('X'));
        // Past it: read again, a second or more on.
        let later = dates.at(until).to_owned();
        assert!(!later.starts_with('X'));
        let wall = |s: &str| s.len() == 29 && s.ends_with(" GMT");
        assert!(wall(&first) && wall(&later), "{first} {later}");
    }

    /// A reading 0.9 s into its second is good for the 0.1 s left of it,
    /// no longer: a cache kept a whole second from each reading would
    /// hand out a date up to a second old.
    #[test]
    fn a_reading_is_good_until_its_own_second_ends() {
        let mut dates = DateCache::new();
        let now = Instant::now();
        dates.read(now, Duration::from_millis(784_111_777_900));
        assert_eq!(dates.valid_until, Some(now + Duration::from_millis(100)));
        assert_eq!(dates.at(now), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(!dates.is_stale(now + Duration::from_millis(99)));
        assert!(dates.is_stale(now + Duration::from_millis(100)));
        dates.read(now, Duration::from_secs(784_111_778));
        assert_eq!(dates.valid_until, Some(now + Duration::from_secs(1)));
    }
}
