//! The client side of server-sent events: `SseParser` turns the bytes of a
//! `text/event-stream` body, in chunks of any size, into `SseFrame`s by the
//! WHATWG EventSource parsing rules (`event:`, `data:` lines joined with
//! `\n`, `id:`, `retry:`, `:` comments, CRLF, LF or CR line ends, a leading
//! BOM). Used by the command line's task follower and the load harness.
//!
//! **Invariant:** bytes are decoded only as complete lines, so a chunk
//! boundary inside a multibyte character or between the CR and LF of a line
//! end changes nothing. The parser does no IO: callers feed it chunks and
//! keep their own timeouts (a keep-alive comment yields no frame but is still
//! a chunk that arrived).

use std::time::Duration;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SseFrame {
    /// The `event:` field; `None` for the default type (`message`).
    pub event: Option<String>,
    /// The last event id the stream set (it carries over to later events
    /// until another `id:` line changes it, as `lastEventId` does).
    pub id: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Splits a byte stream into SSE frames.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line being received (no line end yet).
    line: Vec<u8>,
    /// The previous chunk ended with CR: a LF starting this one belongs to it.
    after_cr: bool,
    /// The first line has been seen (a BOM is stripped only before it).
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    retry: Option<Duration>,
}

impl SseParser {
    /// Feeds one chunk; returns the events it completed, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseFrame> {
        let mut frames = Vec::new();
        let mut rest = bytes;
        if self.after_cr {
            self.after_cr = false;
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..end]);
            if rest[end] == b'\r' {
                match rest.get(end + 1) {
                    Some(b'\n') => rest = &rest[end + 2..],
                    Some(_) => rest = &rest[end + 1..],
                    None => {
                        self.after_cr = true;
                        rest = &[];
                    }
                }
            } else {
                rest = &rest[end + 1..];
            }
            let line = std::mem::take(&mut self.line);
            if let Some(frame) = self.line_ended(&line) {
                frames.push(frame);
            }
        }
        self.line.extend_from_slice(rest);
        frames
    }

    /// The reconnection time the stream asked for (`retry:`), if any.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    fn line_ended(&mut self, raw: &[u8]) -> Option<SseFrame> {
        let mut raw = raw;
        if !self.started {
            self.started = true;
            raw = raw.strip_prefix("\u{feff}".as_bytes()).unwrap_or(raw);
        }
        if raw.is_empty() {
            return self.dispatch();
        }
        // Complete lines only: a character is never cut here.
        let line = String::from_utf8_lossy(raw);
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((&line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {}
        }
        None
    }

    /// A blank line: an event with data is dispatched; one without is
    /// dropped (its `event:` too), as EventSource does.
    fn dispatch(&mut self) -> Option<SseFrame> {
        let event = std::mem::take(&mut self.event);
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(SseFrame {
            event: (!event.is_empty()).then_some(event),
            id: self.last_id.clone().filter(|id| !id.is_empty()),
            data: std::mem::take(&mut self.data),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(event: Option<&str>, id: Option<&str>, data: &str) -> SseFrame {
        SseFrame {
            event: event.map(str::to_owned),
            id: id.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    /// Every split of `input` into two chunks gives the same frames as one chunk.
    fn same_at_every_split(input: &[u8]) -> Vec<SseFrame> {
        let whole = SseParser::default().push(input);
        for cut in 0..=input.len() {
            let mut parser = SseParser::default();
            let mut frames = parser.push(&input[..cut]);
            frames.extend(parser.push(&input[cut..]));
            assert_eq!(frames, whole, "split at byte {cut}");
        }
        whole
    }

    #[test]
    fn frames_are_split_across_chunks_and_comments_dropped() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"event: log\nid: 1\nda").is_empty());
        let frames = parser.push(b"ta: {\"a\":1}\n\n: keep-alive\n\nevent: completion\r\nid: 2\r\ndata: {}\r\n\r\n");
        assert_eq!(
            frames,
            vec![
                frame(Some("log"), Some("1"), "{\"a\":1}"),
                frame(Some("completion"), Some("2"), "{}")
            ]
        );
    }

    #[test]
    fn a_multibyte_character_split_across_chunks_survives() {
        let text = "data: ✓ é 😀\n\n".as_bytes();
        let mut parser = SseParser::default();
        // "✓" is three bytes from offset 6: stop after its first byte.
        assert!(parser.push(&text[..7]).is_empty());
        assert_eq!(parser.push(&text[7..]), vec![frame(None, None, "✓ é 😀")]);
        assert_eq!(same_at_every_split(text), vec![frame(None, None, "✓ é 😀")]);
    }

    #[test]
    fn a_crlf_split_between_its_bytes_is_one_line_end() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"data: a\r").is_empty());
        // Had the LF counted as a second line end, this would be a blank line.
        assert!(parser.push(b"\ndata: b\r").is_empty());
        assert_eq!(parser.push(b"\n\r\n"), vec![frame(None, None, "a\nb")]);
        same_at_every_split(b"event: x\r\ndata: 1\r\n\r\ndata: 2\r\r");
    }

    #[test]
    fn cr_alone_and_lf_alone_end_lines() {
        let frames = same_at_every_split(b"data: cr\r\rdata: lf\n\ndata: mixed\r\ndata: more\n\r");
        assert_eq!(
            frames,
            vec![
                frame(None, None, "cr"),
                frame(None, None, "lf"),
                frame(None, None, "mixed\nmore")
            ]
        );
    }

    #[test]
    fn fields_follow_the_eventsource_rules() {
        let input = "\u{feff}: comment\nretry: 1500\nid: 7\nevent: a\ndata\ndata:x\ndata:  two spaces\nunknown: z\n\n\
                     event: dropped\n\n\
                     data: after\n\n\
                     id\ndata: no id\n\n"
            .as_bytes();
        let mut parser = SseParser::default();
        let frames = parser.push(input);
        assert_eq!(
            frames,
            vec![
                // `data` without a colon is an empty line of data; one space is stripped.
                frame(Some("a"), Some("7"), "\nx\n two spaces"),
                // An event without data is not dispatched and its type is forgotten;
                // the id carries over.
                frame(None, Some("7"), "after"),
                // An empty `id` resets it.
                frame(None, None, "no id"),
            ]
        );
        assert_eq!(parser.retry(), Some(Duration::from_millis(1500)));
        assert_eq!(same_at_every_split(input), frames);
    }

    #[test]
    fn an_unfinished_event_is_not_dispatched() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"data: half\n").is_empty());
        assert!(parser.push(b"data: still").is_empty());
    }
}
