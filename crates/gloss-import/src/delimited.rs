//! CSV and TSV rows: one column holds the text, every other column becomes a `meta` string.

use std::io::Read;

use crate::source::{Source, BUFFER_BYTES};
use crate::{
    input_hash, push_json_str, too_large, utf8_reason, ImportError, Item, Record, RecordError,
};

pub(crate) struct Rows<R> {
    reader: csv::Reader<Source<R>>,
    row: csv::ByteRecord,
    columns: Vec<String>,
    /// `columns` pre-encoded as JSON object keys (`"name":`).
    keys: Vec<String>,
    text_index: usize,
    max: usize,
    /// Raw bytes one row may span before the stream is abandoned; see [`Rows::next_item`].
    hard_cap: u64,
}

impl<R: Read> Rows<R> {
    pub(crate) fn new(
        mut src: Source<R>,
        delimiter: u8,
        text_column: &str,
        max: usize,
    ) -> Result<Self, ImportError> {
        let hard_cap = (max as u64)
            .saturating_mul(4)
            .saturating_add(BUFFER_BYTES as u64);
        src.track_lines();
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .buffer_capacity(BUFFER_BYTES)
            .from_reader(src);
        reader.get_mut().fence = hard_cap;
        let header = match reader.byte_headers().cloned() {
            Ok(header) => header,
            Err(_) if reader.get_ref().tripped => {
                return Err(ImportError::RecordTooLarge {
                    line: 1,
                    limit: max,
                });
            }
            Err(e) => return Err(csv_error(e)),
        };
        if header.is_empty() {
            return Err(ImportError::EmptyCsv);
        }
        let columns = header
            .iter()
            .enumerate()
            .map(|(i, name)| {
                String::from_utf8(name.to_vec()).map_err(|e| {
                    ImportError::Header(format!(
                        "column {} is not valid UTF-8 ({})",
                        i + 1,
                        utf8_reason(&e.utf8_error())
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let Some(text_index) = columns.iter().position(|c| c == text_column) else {
            return Err(ImportError::MissingTextColumn {
                column: text_column.to_owned(),
                columns,
            });
        };
        let keys = columns
            .iter()
            .map(|c| {
                let mut key = String::with_capacity(c.len() + 3);
                push_json_str(&mut key, c);
                key.push(':');
                key
            })
            .collect();
        Ok(Self {
            reader,
            row: csv::ByteRecord::new(),
            columns,
            keys,
            text_index,
            max,
            hard_cap,
        })
    }

    /// The next row, `None` at the end. The csv reader holds a whole row in memory, so the
    /// source refuses to hand out more than `hard_cap` bytes for one row: a row that big is
    /// fatal, because the stream cannot be resynchronised without parsing it. Rows merely over
    /// `max` are reported per row.
    pub(crate) fn next_item(&mut self) -> Result<Option<Item>, ImportError> {
        let start = self.reader.position().clone();
        self.reader.get_mut().fence = start.byte().saturating_add(self.hard_cap);
        match self.reader.read_byte_record(&mut self.row) {
            Ok(false) => Ok(None),
            Ok(true) => {
                // csv positions a row before skipping the blank lines (or the "\n" of a "\r\n")
                // ahead of it, so count back from the row's last byte instead.
                let end = self.reader.position().byte();
                let inner = self.row.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
                let last = self.reader.get_ref().line_of(end.saturating_sub(1));
                let line = last.saturating_sub(inner).max(start.line());
                Ok(Some(match self.record(line) {
                    Ok(record) => Item::Record(record),
                    Err(error) => Item::Invalid(error),
                }))
            }
            Err(_) if self.reader.get_ref().tripped => Err(ImportError::RecordTooLarge {
                line: start.line(),
                limit: self.max,
            }),
            Err(e) => Err(csv_error(e)),
        }
    }

    fn record(&self, line: u64) -> Result<Record, RecordError> {
        let fail = |field: Option<&str>, reason: String| RecordError {
            line,
            field: field.map(str::to_owned),
            reason,
        };
        if self.row.len() != self.columns.len() {
            let reason = format!(
                "has {} fields but the header has {}",
                self.row.len(),
                self.columns.len()
            );
            return Err(fail(None, reason));
        }
        let size = self.row.as_slice().len();
        if size > self.max {
            return Err(fail(None, too_large(self.max, size as u64)));
        }
        let cell = |i: usize| {
            std::str::from_utf8(&self.row[i])
                .map_err(|e| fail(Some(&self.columns[i]), utf8_reason(&e)))
        };
        let text = cell(self.text_index)?;
        if text.trim().is_empty() {
            return Err(fail(
                Some(&self.columns[self.text_index]),
                "is empty or only whitespace".into(),
            ));
        }
        let mut json = String::with_capacity(size + 16 * self.columns.len() + 24);
        json.push_str("{\"text\":");
        push_json_str(&mut json, text);
        if self.columns.len() > 1 {
            json.push_str(",\"meta\":{");
            let mut sep = "";
            for i in (0..self.columns.len()).filter(|&i| i != self.text_index) {
                json.push_str(sep);
                sep = ",";
                json.push_str(&self.keys[i]);
                push_json_str(&mut json, cell(i)?);
            }
            json.push('}');
        }
        json.push('}');
        Ok(Record {
            line,
            input_hash: input_hash(text),
            text: text.to_owned(),
            json,
            image: None,
        })
    }
}

fn csv_error(e: csv::Error) -> ImportError {
    let message = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(io) => ImportError::Io(io),
        _ => ImportError::Csv(message),
    }
}
