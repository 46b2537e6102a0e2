//! Byte-level reading: BOM stripping, a byte fence for CSV rows and bounded line splitting.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, ErrorKind, Read};

/// Read-buffer size for every format.
pub(crate) const BUFFER_BYTES: usize = 256 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The caller's reader with a leading UTF-8 BOM removed. It counts the bytes it hands out,
/// refuses to read past `fence` (so the CSV path can bound the memory one row takes) and can
/// note where newlines fall (so CSV rows get their true starting line).
pub(crate) struct Source<R> {
    inner: R,
    head: [u8; 3],
    head_pos: usize,
    head_len: usize,
    read: u64,
    pub(crate) fence: u64,
    pub(crate) tripped: bool,
    /// When set, offsets of the recently handed-out `\n` bytes (CSV line numbers).
    newlines: Option<VecDeque<u64>>,
    forgotten_newlines: u64,
}

impl<R: Read> Source<R> {
    /// Reads the first bytes of `inner` to look for a BOM.
    pub(crate) fn new(mut inner: R) -> io::Result<Self> {
        let mut head = [0; 3];
        let mut head_len = 0;
        while head_len < head.len() {
            match inner.read(&mut head[head_len..]) {
                Ok(0) => break,
                Ok(n) => head_len += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let head_pos = if head[..head_len] == *BOM {
            BOM.len()
        } else {
            0
        };
        Ok(Self {
            inner,
            head,
            head_pos,
            head_len,
            read: 0,
            fence: u64::MAX,
            tripped: false,
            newlines: None,
            forgotten_newlines: 0,
        })
    }

    /// Starts recording newline offsets so that [`Source::line_of`] works.
    pub(crate) fn track_lines(&mut self) {
        self.newlines.get_or_insert_with(VecDeque::new);
    }

    /// 1-based line number of the byte at `offset` (a `\n` belongs to the line it ends). Only
    /// offsets from the last byte before the latest read onwards are answered correctly.
    pub(crate) fn line_of(&self, offset: u64) -> u64 {
        let kept = self
            .newlines
            .as_ref()
            .map_or(0, |n| n.partition_point(|&o| o < offset));
        1 + self.forgotten_newlines + kept as u64
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.read > self.fence {
            self.tripped = true;
            return Err(io::Error::other("record is over the size limit"));
        }
        let n = if self.head_pos < self.head_len {
            let n = (self.head_len - self.head_pos).min(out.len());
            out[..n].copy_from_slice(&self.head[self.head_pos..self.head_pos + n]);
            self.head_pos += n;
            n
        } else {
            self.inner.read(out)?
        };
        if let Some(newlines) = &mut self.newlines {
            // The buffered reader above has consumed every byte before `self.read` when it asks
            // for more, so no later question concerns a byte before `self.read - 1`.
            let stale = newlines.partition_point(|&o| o + 1 < self.read);
            newlines.drain(..stale);
            self.forgotten_newlines += stale as u64;
            let base = self.read;
            newlines.extend(
                out[..n]
                    .iter()
                    .enumerate()
                    .filter(|(_, &b)| b == b'\n')
                    .map(|(i, _)| base + i as u64),
            );
        }
        self.read += n as u64;
        Ok(n)
    }
}

/// Outcome of reading one physical line.
pub(crate) enum Line {
    /// The line (without its `\n` or `\r\n`) is in [`LineReader::buf`].
    Fits,
    /// The line was longer than allowed; it was skipped and `bytes` is its length.
    TooLong { bytes: u64 },
}

/// Splits a stream into physical lines while holding at most `max + 1` bytes of any line.
pub(crate) struct LineReader<R> {
    src: BufReader<Source<R>>,
    pub(crate) buf: Vec<u8>,
    /// 1-based number of the line last returned.
    pub(crate) line: u64,
}

impl<R: Read> LineReader<R> {
    pub(crate) fn new(src: Source<R>) -> Self {
        Self {
            src: BufReader::with_capacity(BUFFER_BYTES, src),
            buf: Vec::new(),
            line: 0,
        }
    }

    /// Reads the next line; `None` at the end of the stream.
    pub(crate) fn next_line(&mut self, max: usize) -> io::Result<Option<Line>> {
        self.buf.clear();
        // One byte of slack so that a line of exactly `max` bytes may still end in "\r\n".
        let keep = max.saturating_add(1);
        let (mut seen, mut over, mut started, mut last) = (0u64, false, false, 0u8);
        loop {
            let chunk = match self.src.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if !started {
                    return Ok(None);
                }
                break;
            }
            started = true;
            let newline = chunk.iter().position(|&b| b == b'\n');
            let part = &chunk[..newline.unwrap_or(chunk.len())];
            seen += part.len() as u64;
            last = part.last().copied().unwrap_or(last);
            if !over {
                if self.buf.len() + part.len() <= keep {
                    self.buf.extend_from_slice(part);
                } else {
                    over = true;
                    self.buf.clear();
                }
            }
            let used = newline.map_or(part.len(), |i| i + 1);
            self.src.consume(used);
            if newline.is_some() {
                break;
            }
        }
        self.line += 1;
        if over {
            return Ok(Some(Line::TooLong {
                bytes: seen - u64::from(last == b'\r'),
            }));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if self.buf.len() > max {
            return Ok(Some(Line::TooLong {
                bytes: self.buf.len() as u64,
            }));
        }
        Ok(Some(Line::Fits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` bytes of `b'x'`, produced without ever holding them, then `tail`.
    struct Huge {
        left: usize,
        tail: io::Cursor<&'static [u8]>,
    }

    impl Read for Huge {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.left == 0 {
                return self.tail.read(out);
            }
            let n = self.left.min(out.len());
            out[..n].fill(b'x');
            self.left -= n;
            Ok(n)
        }
    }

    #[test]
    fn overlong_line_is_skipped_without_buffering_it() {
        let huge = Huge {
            left: 64 << 20,
            tail: io::Cursor::new(b"\r\nshort\n"),
        };
        let mut lines = LineReader::new(Source::new(huge).unwrap());
        let max = 1024;
        match lines.next_line(max).unwrap() {
            Some(Line::TooLong { bytes }) => assert_eq!(bytes, 64 << 20),
            _ => panic!("expected an over-long line"),
        }
        assert!(
            lines.buf.capacity() <= 4 * max,
            "line buffer grew to {}",
            lines.buf.capacity()
        );
        assert!(matches!(lines.next_line(max).unwrap(), Some(Line::Fits)));
        assert_eq!((lines.line, &lines.buf[..]), (2, &b"short"[..]));
        assert!(lines.next_line(max).unwrap().is_none());
    }

    #[test]
    fn bom_is_stripped_even_from_one_byte_reads() {
        struct Trickle(Vec<u8>, usize);
        impl Read for Trickle {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = usize::from(self.1 < self.0.len() && !out.is_empty());
                out[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let mut out = Vec::new();
        Source::new(Trickle(b"\xEF\xBB\xBFab".to_vec(), 0))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"ab");
        let mut out = Vec::new();
        Source::new(Trickle(b"\xEF\xBB".to_vec(), 0))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"\xEF\xBB");
    }
}
