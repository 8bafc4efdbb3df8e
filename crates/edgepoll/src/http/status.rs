//! HTTP status codes and their reason phrases.

/// A response status code, such as `StatusCode::OK`. The codes RFC 9110
/// defines have constants (but 305, 306 and 418, which it keeps unused),
/// as have RFC 6585's, 103 (RFC 8297) and 508 (RFC 5842); any other from
/// 100 to 999 is made by
/// [`from_u16`](StatusCode::from_u16), in a `const` too.
///
/// ```
/// use edgepoll::http::StatusCode;
/// assert_eq!(StatusCode::NOT_FOUND.as_u16(), 404);
/// assert_eq!(StatusCode::CREATED.reason(), "Created");
/// const TOO_EARLY: StatusCode = StatusCode::from_u16(425).unwrap();
/// assert_eq!(TOO_EARLY.to_string(), "425"); // no phrase of its own
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StatusCode(u16);

/// The named codes: each line `(code, NAME, "Reason Phrase");`. A constant's
/// doc is its code and phrase ("201 Created."), then any doc comment above
/// its line.
macro_rules! status_codes {
    ($( $(#[$doc:meta])* ($code:literal, $name:ident, $reason:literal); )*) => {
        impl StatusCode {
            $(
                #[doc = concat!(stringify!($code), " ", $reason, ".")]
                $(#[$doc])*
                pub const $name: StatusCode = StatusCode($code);
            )*
        }

        /// Every named code with its reason phrase, in order.
        const NAMED: &[(u16, &str)] = &[$(($code, $reason)),*];
    };
}

// The codes of RFC 9110 §15 (but the unused 305, 306 and 418), with those
// of RFC 6585, RFC 8297 and RFC 5842 that a server or proxy meets: one list
// gives both the constants and the reason phrases.
status_codes! {
    (100, CONTINUE, "Continue");
    /// The connection leaves HTTP (see [`ws::handshake`](crate::ws::handshake)).
    (101, SWITCHING_PROTOCOLS, "Switching Protocols");
    /// RFC 8297.
    (103, EARLY_HINTS, "Early Hints");
    (200, OK, "OK");
    (201, CREATED, "Created");
    (202, ACCEPTED, "Accepted");
    (203, NON_AUTHORITATIVE_INFORMATION, "Non-Authoritative Information");
    (204, NO_CONTENT, "No Content");
    (205, RESET_CONTENT, "Reset Content");
    (206, PARTIAL_CONTENT, "Partial Content");
    (300, MULTIPLE_CHOICES, "Multiple Choices");
    (301, MOVED_PERMANENTLY, "Moved Permanently");
    (302, FOUND, "Found");
    (303, SEE_OTHER, "See Other");
    (304, NOT_MODIFIED, "Not Modified");
    (307, TEMPORARY_REDIRECT, "Temporary Redirect");
    (308, PERMANENT_REDIRECT, "Permanent Redirect");
    (400, BAD_REQUEST, "Bad Request");
    (401, UNAUTHORIZED, "Unauthorized");
    (402, PAYMENT_REQUIRED, "Payment Required");
    (403, FORBIDDEN, "Forbidden");
    (404, NOT_FOUND, "Not Found");
    (405, METHOD_NOT_ALLOWED, "Method Not Allowed");
    (406, NOT_ACCEPTABLE, "Not Acceptable");
    (407, PROXY_AUTHENTICATION_REQUIRED, "Proxy Authentication Required");
    (408, REQUEST_TIMEOUT, "Request Timeout");
    (409, CONFLICT, "Conflict");
    (410, GONE, "Gone");
    (411, LENGTH_REQUIRED, "Length Required");
    (412, PRECONDITION_FAILED, "Precondition Failed");
    (413, CONTENT_TOO_LARGE, "Content Too Large");
    (414, URI_TOO_LONG, "URI Too Long");
    (415, UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type");
    (416, RANGE_NOT_SATISFIABLE, "Range Not Satisfiable");
    (417, EXPECTATION_FAILED, "Expectation Failed");
    (421, MISDIRECTED_REQUEST, "Misdirected Request");
    (422, UNPROCESSABLE_CONTENT, "Unprocessable Content");
    (426, UPGRADE_REQUIRED, "Upgrade Required");
    /// RFC 6585.
    (428, PRECONDITION_REQUIRED, "Precondition Required");
    /// RFC 6585.
    (429, TOO_MANY_REQUESTS, "Too Many Requests");
    /// RFC 6585.
    (431, HEADER_FIELDS_TOO_LARGE, "Request Header Fields Too Large");
    (500, INTERNAL_SERVER_ERROR, "Internal Server Error");
    (501, NOT_IMPLEMENTED, "Not Implemented");
    (502, BAD_GATEWAY, "Bad Gateway");
    (503, SERVICE_UNAVAILABLE, "Service Unavailable");
    (504, GATEWAY_TIMEOUT, "Gateway Timeout");
    (505, VERSION_NOT_SUPPORTED, "HTTP Version Not Supported");
    /// A request came back to an intermediary that had already passed it
    /// on (RFC 5842).
    (508, LOOP_DETECTED, "Loop Detected");
    /// RFC 6585.
    (511, NETWORK_AUTHENTICATION_REQUIRED, "Network Authentication Required");
}

impl StatusCode {
    /// A status from its number; `None` outside 100..=999.
    ///
    /// ```
    /// use edgepoll::http::StatusCode;
    /// assert_eq!(StatusCode::from_u16(418).map(StatusCode::as_u16), Some(418));
    /// assert_eq!(StatusCode::from_u16(99), None);
    /// const TEAPOT: Option<StatusCode> = StatusCode::from_u16(418); // usable in a const
    /// ```
    pub const fn from_u16(code: u16) -> Option<StatusCode> {
        match code {
            100..=999 => Some(StatusCode(code)),
            _ => None,
        }
    }

    /// The number.
    ///
    /// ```
    /// use edgepoll::http::StatusCode;
    /// assert_eq!(StatusCode::GATEWAY_TIMEOUT.as_u16(), 504);
    /// ```
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether the request succeeded (2xx).
    ///
    /// ```
    /// use edgepoll::http::StatusCode;
    /// assert!(StatusCode::OK.is_success());
    /// assert!(!StatusCode::NOT_FOUND.is_success());
    /// ```
    pub const fn is_success(self) -> bool {
        matches!(self.0, 200..=299)
    }

    /// Whether a response with this status carries no body (1xx, 204, 304).
    ///
    /// ```
    /// use edgepoll::http::StatusCode;
    /// assert!(StatusCode::NO_CONTENT.forbids_body() && StatusCode::NOT_MODIFIED.forbids_body());
    /// assert!(!StatusCode::NOT_FOUND.forbids_body());
    /// ```
    pub const fn forbids_body(self) -> bool {
        self.0 < 200 || self.0 == 204 || self.0 == 304
    }

    /// The standard reason phrase, or `""` for codes this crate does not name.
    ///
    /// ```
    /// use edgepoll::http::StatusCode;
    /// assert_eq!(StatusCode::NOT_FOUND.reason(), "Not Found");
    /// assert_eq!(StatusCode::from_u16(599).unwrap().reason(), "");
    /// ```
    pub fn reason(self) -> &'static str {
        // A table, not a `match`: a match over two dozen codes costs an
        // interpreter a nest of blocks on every call.
        REASONS
            .get(usize::from(self.0).wrapping_sub(100))
            .copied()
            .unwrap_or("")
    }
}

/// The highest code named.
const LAST_NAMED: u16 = NAMED[NAMED.len() - 1].0;

/// Reason phrases by code, from 100 up to the last one named.
const REASONS: [&str; LAST_NAMED as usize - 99] = {
    let mut table = [""; LAST_NAMED as usize - 99];
    let mut i = 0;
    while i < NAMED.len() {
        table[(NAMED[i].0 - 100) as usize] = NAMED[i].1;
        i += 1;
    }
    table
};

impl std::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason() {
            "" => write!(f, "{}", self.0),
            reason => write!(f, "{} {reason}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_code_has_its_phrase_and_no_other_code_has_one() {
        assert!(NAMED.windows(2).all(|pair| pair[0].0 < pair[1].0));
        for code in 0..=1000u16 {
            let named = NAMED.iter().find(|(c, _)| *c == code).map(|(_, r)| *r);
            match StatusCode::from_u16(code) {
                Some(status) => assert_eq!(status.reason(), named.unwrap_or(""), "{code}"),
                None => assert!(named.is_none() && !(100..=999).contains(&code)),
            }
        }
        assert_eq!(StatusCode::CREATED.reason(), "Created");
        assert_eq!(StatusCode::NETWORK_AUTHENTICATION_REQUIRED.as_u16(), 511);
        assert_eq!(
            StatusCode::VERSION_NOT_SUPPORTED.to_string(),
            "505 HTTP Version Not Supported"
        );
    }

    #[test]
    fn a_code_without_a_constant_can_be_made_one_at_compile_time() {
        const TEAPOT: StatusCode = StatusCode::from_u16(418).unwrap();
        assert_eq!((TEAPOT.as_u16(), TEAPOT.reason()), (418, ""));
        assert!(StatusCode::from_u16(1000).is_none() && StatusCode::from_u16(99).is_none());
    }
}
