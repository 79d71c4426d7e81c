//! The output tail: the last `max_output_bytes` of what a run wrote.
//!
//! A job that prints gigabytes must not take the executor (or the leader's raft
//! log) with it, and the end of the output is where the error usually is, so the
//! buffer keeps the tail and drops from the front, remembering that it did. Bytes
//! are stored as written; the conversion to text happens once, at the end, lossily,
//! after skipping a UTF-8 sequence that the cut may have split.

use std::collections::VecDeque;

/// A byte buffer that keeps only its last `cap` bytes.
#[derive(Debug)]
pub(crate) struct OutputTail {
    bytes: VecDeque<u8>,
    cap: usize,
    truncated: bool,
}

impl OutputTail {
    /// An empty tail of at most `cap` bytes.
    pub(crate) fn new(cap: usize) -> Self {
        OutputTail {
            bytes: VecDeque::new(),
            cap,
            truncated: false,
        }
    }

    /// Appends `data`, dropping the oldest bytes beyond the cap.
    pub(crate) fn push(&mut self, data: &[u8]) {
        let data = if data.len() > self.cap {
            self.truncated = true;
            self.bytes.clear();
            &data[data.len() - self.cap..]
        } else {
            data
        };
        let overflow = (self.bytes.len() + data.len()).saturating_sub(self.cap);
        if overflow > 0 {
            self.truncated = true;
            self.bytes.drain(..overflow);
        }
        self.bytes.extend(data);
    }

    /// True once any byte was dropped.
    #[cfg(test)]
    pub(crate) fn truncated(&self) -> bool {
        self.truncated
    }

    /// The kept output as text, and whether bytes were dropped.
    pub(crate) fn into_text(mut self) -> (String, bool) {
        let bytes = self.bytes.make_contiguous();
        let mut start = 0;
        if self.truncated {
            // The cut may have landed inside a multi-byte character: skip its
            // continuation bytes (at most three) rather than print U+FFFD.
            while start < bytes.len().min(3) && bytes[start] & 0b1100_0000 == 0b1000_0000 {
                start += 1;
            }
        }
        (
            String::from_utf8_lossy(&bytes[start..]).into_owned(),
            self.truncated,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_is_kept_whole() {
        let mut tail = OutputTail::new(10);
        tail.push(b"abc");
        tail.push(b"def");
        assert!(!tail.truncated());
        assert_eq!(tail.into_text(), ("abcdef".to_string(), false));
    }

    #[test]
    fn exactly_the_cap_is_not_truncated() {
        let mut tail = OutputTail::new(4);
        tail.push(b"ab");
        tail.push(b"cd");
        assert_eq!(tail.into_text(), ("abcd".to_string(), false));
    }

    #[test]
    fn the_tail_is_kept_across_pushes() {
        let mut tail = OutputTail::new(4);
        tail.push(b"abc");
        tail.push(b"def");
        assert_eq!(tail.into_text(), ("cdef".to_string(), true));
    }

    #[test]
    fn one_large_push_keeps_its_end() {
        let mut tail = OutputTail::new(3);
        tail.push(b"x");
        tail.push(b"0123456789");
        assert_eq!(tail.into_text(), ("789".to_string(), true));
    }

    #[test]
    fn a_split_character_at_the_cut_is_skipped() {
        let mut tail = OutputTail::new(4);
        tail.push("aé€".as_bytes()); // 1 + 2 + 3 bytes; the cut splits é
        assert_eq!(tail.into_text(), ("€".to_string(), true));
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let mut tail = OutputTail::new(10);
        tail.push(b"ok\xffok");
        assert_eq!(tail.into_text(), ("ok\u{fffd}ok".to_string(), false));
    }
}
