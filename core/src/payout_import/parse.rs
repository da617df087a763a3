//! Parsing bulk payout files: CSV (`uid,amount,memo,idempotency_key`, header optional) or JSON
//! lines (one `{uid, amount, memo, metadata?, idempotency_key}` object per line).
//!
//! A bad row never stops the others: every row comes back with its line number and either a
//! request or the reason it was refused.

use crate::amount::PiAmount;
use crate::ids::Uid;
use crate::ledger::PayoutRequest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most rows one bulk request or import file may hold.
pub const MAX_BULK_ROWS: usize = 200_000;

/// The CSV columns, in the order used when the file has no header.
pub const CSV_COLUMNS: [&str; 4] = ["uid", "amount", "memo", "idempotency_key"];

/// Which format a bulk body is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkFormat {
    /// Comma-separated values (`text/csv`).
    Csv,
    /// One JSON object per line (`application/x-ndjson`, `application/jsonl`).
    JsonLines,
}

impl BulkFormat {
    /// The format named by a `Content-Type` header; `None` for anything else.
    pub fn from_content_type(content_type: &str) -> Option<BulkFormat> {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "text/csv" | "application/csv" => Some(BulkFormat::Csv),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/jsonlines" => Some(BulkFormat::JsonLines),
            _ => None,
        }
    }

    /// The format of a file, by its extension (`.csv`, `.jsonl`, `.ndjson`), else by its first
    /// non-blank character (`{` → JSON lines).
    pub fn for_file(path: &std::path::Path, bytes: &[u8]) -> BulkFormat {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "csv" => BulkFormat::Csv,
            "jsonl" | "ndjson" => BulkFormat::JsonLines,
            _ => match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{') => BulkFormat::JsonLines,
                _ => BulkFormat::Csv,
            },
        }
    }
}

/// One row of a bulk file: its line number (1-based) and the request, or why it was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkRow {
    /// Where the row starts in the file.
    pub line: u64,
    /// The payout request (`batch_id` unset), or the reason the row was refused.
    pub request: Result<PayoutRequest, String>,
}

/// A refused row, as the API and the CLI report it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RejectedRow {
    /// Line number in the file (1-based).
    pub line: u64,
    /// Why, and what to change.
    pub error: String,
}

/// Why a whole body could not be read (individual rows are reported per line instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkError {
    #[error(
        "the file holds no payout rows: send one row per payout ({})",
        "uid,amount,memo,idempotency_key"
    )]
    Empty,
    #[error("the file holds more than {max} rows: split it into several files")]
    TooManyRows { max: usize },
    #[error("the CSV header {0:?} does not name the columns uid, amount, memo and idempotency_key")]
    BadHeader(String),
}

/// The JSON form of one payout request (`POST /payouts` and JSON lines). Amounts are read from
/// the number's text (never through a float); unknown fields are refused so that a typo such
/// as `idempotencyKey` is not silently ignored.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PayoutRequest)]
pub struct PayoutRequestJson {
    /// The Pioneer's uid.
    pub uid: String,
    /// The amount, as a JSON number or a numeric string (at most 7 decimals).
    pub amount: PiAmount,
    /// Shown to the Pioneer.
    #[serde(default)]
    pub memo: String,
    /// The app's own JSON object.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Unique per payout.
    pub idempotency_key: String,
}

impl PayoutRequestJson {
    /// Into a ledger request (no batch); the error names the bad field.
    pub fn into_request(self) -> Result<PayoutRequest, String> {
        let uid = Uid::parse(self.uid.trim()).map_err(|e| e.to_string())?;
        let request = PayoutRequest {
            uid,
            amount: self.amount,
            memo: self.memo,
            metadata: self.metadata.unwrap_or(Value::Null),
            idempotency_key: self.idempotency_key,
            batch_id: None,
        };
        request.validate().map_err(|e| e.to_string())?;
        Ok(request)
    }
}

/// Parse one JSON payout request (the body of `POST /payouts`, or one JSON line).
pub fn parse_json_request(text: &[u8]) -> Result<PayoutRequest, String> {
    let parsed: PayoutRequestJson = serde_json::from_slice(text).map_err(|e| {
        format!(
            "not a payout object ({e}); send {{\"uid\": \"…\", \"amount\": \"1.5\", \"memo\": \"…\", \"idempotency_key\": \"…\"}}"
        )
    })?;
    parsed.into_request()
}

/// Parse a whole bulk body. Rows are returned in file order; a bad row is an `Err` row, not a
/// failure of the call.
pub fn parse_bulk(bytes: &[u8], format: BulkFormat) -> Result<Vec<BulkRow>, BulkError> {
    let rows = match format {
        BulkFormat::Csv => parse_csv(bytes)?,
        BulkFormat::JsonLines => parse_json_lines(bytes)?,
    };
    if rows.is_empty() {
        return Err(BulkError::Empty);
    }
    Ok(rows)
}

fn parse_json_lines(bytes: &[u8]) -> Result<Vec<BulkRow>, BulkError> {
    let mut rows = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if rows.len() >= MAX_BULK_ROWS {
            return Err(BulkError::TooManyRows { max: MAX_BULK_ROWS });
        }
        rows.push(BulkRow {
            line: i as u64 + 1,
            request: parse_json_request(line),
        });
    }
    Ok(rows)
}

/// Column positions of the four fields (and an optional `metadata` column of JSON).
struct Columns {
    uid: usize,
    amount: usize,
    memo: usize,
    key: usize,
    metadata: Option<usize>,
}

impl Columns {
    const DEFAULT: Columns = Columns {
        uid: 0,
        amount: 1,
        memo: 2,
        key: 3,
        metadata: None,
    };

    /// The positions named by a header row, or `None` if the row is not a header.
    ///
    /// A header is a row whose every field is a known column name: a data row that merely
    /// contains a word such as `memo` (as a memo, say) is data, not a broken header.
    fn from_header(record: &csv::ByteRecord) -> Result<Option<Columns>, BulkError> {
        let names: Vec<String> = record
            .iter()
            .map(|f| {
                String::from_utf8_lossy(f)
                    .trim()
                    .trim_start_matches('\u{feff}')
                    .to_ascii_lowercase()
            })
            .collect();
        let all_known = names
            .iter()
            .all(|n| CSV_COLUMNS.contains(&n.as_str()) || n.as_str() == "metadata");
        if !all_known {
            return Ok(None);
        }
        let find = |name: &str| names.iter().position(|n| n == name);
        match (
            find("uid"),
            find("amount"),
            find("memo"),
            find("idempotency_key"),
        ) {
            (Some(uid), Some(amount), Some(memo), Some(key)) => Ok(Some(Columns {
                uid,
                amount,
                memo,
                key,
                metadata: find("metadata"),
            })),
            _ => Err(BulkError::BadHeader(names.join(","))),
        }
    }
}

fn parse_csv(bytes: &[u8]) -> Result<Vec<BulkRow>, BulkError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let mut rows = Vec::new();
    let mut columns: Option<Columns> = None;
    let mut record = csv::ByteRecord::new();
    // Line numbers from byte offsets: csv's own line count skips blank lines.
    let mut lines = LineCounter::default();
    loop {
        let line = lines.line_at(bytes, reader.position().byte());
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(err) => {
                // An unreadable record (e.g. an unclosed quote swallowing the rest of the
                // file): report it on its line and stop, the rest cannot be trusted.
                let line = err
                    .position()
                    .map(|p| lines.line_at(bytes, p.byte()))
                    .unwrap_or(line);
                rows.push(BulkRow {
                    line,
                    request: Err(format!(
                        "unreadable CSV ({err}); check the quotes on this line"
                    )),
                });
                break;
            }
        }
        let line = record
            .position()
            .map(|p| lines.line_at(bytes, skip_line_breaks(bytes, p.byte())))
            .unwrap_or(line);
        if record.iter().all(|f| f.is_empty()) {
            continue;
        }
        if columns.is_none() {
            // The first non-empty row: a header naming the columns, or already data.
            let found = Columns::from_header(&record)?;
            let is_header = found.is_some();
            columns = Some(found.unwrap_or(Columns::DEFAULT));
            if is_header {
                continue;
            }
        }
        let cols = columns.as_ref().unwrap_or(&Columns::DEFAULT);
        if rows.len() >= MAX_BULK_ROWS {
            return Err(BulkError::TooManyRows { max: MAX_BULK_ROWS });
        }
        rows.push(BulkRow {
            line,
            request: csv_request(&record, cols),
        });
    }
    Ok(rows)
}

/// A record's position may point at the blank lines csv skipped before it: move past them.
fn skip_line_breaks(bytes: &[u8], offset: u64) -> u64 {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let skipped = bytes[start..]
        .iter()
        .take_while(|b| matches!(b, b'\n' | b'\r'))
        .count();
    offset + skipped as u64
}

/// The 1-based line of a byte offset, counted incrementally (offsets only grow). Lines end
/// as csv ends records: `\n`, `\r\n` or a lone `\r` (old Mac exports), so that a refused row
/// of a CR-only file is reported on its own line, not on line 1.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    breaks: u64,
}

impl LineCounter {
    fn line_at(&mut self, bytes: &[u8], offset: u64) -> u64 {
        let offset = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        if offset > self.offset {
            // A `\r` counts unless a `\n` follows it (then that `\n` ends the line), looking
            // past the end of this stretch.
            let seen = (self.offset..offset).filter(|&i| match bytes[i] {
                b'\n' => true,
                b'\r' => bytes.get(i + 1) != Some(&b'\n'),
                _ => false,
            });
            self.breaks += seen.count() as u64;
            self.offset = offset;
        }
        self.breaks + 1
    }
}

fn csv_request(record: &csv::ByteRecord, cols: &Columns) -> Result<PayoutRequest, String> {
    let field = |i: usize, name: &str| -> Result<String, String> {
        let raw = record.get(i).ok_or_else(|| {
            format!(
                "the row has {} columns, {name} is missing; write uid,amount,memo,idempotency_key",
                record.len()
            )
        })?;
        String::from_utf8(raw.to_vec()).map_err(|_| format!("{name} is not valid UTF-8"))
    };
    let uid = field(cols.uid, "uid")?;
    let uid = Uid::parse(&uid).map_err(|e| e.to_string())?;
    let amount = PiAmount::parse(&field(cols.amount, "amount")?).map_err(|e| e.to_string())?;
    let memo = field(cols.memo, "memo")?;
    let idempotency_key = field(cols.key, "idempotency_key")?;
    let metadata = match cols.metadata.and_then(|i| record.get(i)) {
        Some(raw) if !raw.is_empty() => serde_json::from_slice(raw)
            .map_err(|e| format!("metadata is not a JSON object ({e})"))?,
        _ => Value::Null,
    };
    let request = PayoutRequest {
        uid,
        amount,
        memo,
        metadata,
        idempotency_key,
        batch_id: None,
    };
    request.validate().map_err(|e| e.to_string())?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use crate::payout_import::parse::*;

    fn ok(rows: &[BulkRow]) -> Vec<(u64, String, i64, String)> {
        rows.iter()
            .filter_map(|r| {
                r.request.as_ref().ok().map(|q| {
                    (
                        r.line,
                        q.uid.as_str().to_string(),
                        q.amount.stroops(),
                        q.idempotency_key.clone(),
                    )
                })
            })
            .collect()
    }

    fn errors(rows: &[BulkRow]) -> Vec<u64> {
        rows.iter()
            .filter(|r| r.request.is_err())
            .map(|r| r.line)
            .collect()
    }

    #[test]
    fn csv_with_and_without_header() {
        let with = b"uid,amount,memo,idempotency_key\nalice,1.5,Hi,k1\n\nbob, 2 ,\"a, b\",k2\n";
        let rows = parse_bulk(with, BulkFormat::Csv).unwrap();
        assert_eq!(
            ok(&rows),
            vec![
                (2, "alice".into(), 15_000_000, "k1".into()),
                (4, "bob".into(), 20_000_000, "k2".into())
            ]
        );
        assert_eq!(rows[1].request.as_ref().unwrap().memo, "a, b");
        let without = b"alice,1.5,Hi,k1\nbob,2,x,k2";
        let rows = parse_bulk(without, BulkFormat::Csv).unwrap();
        assert_eq!(ok(&rows).len(), 2);
        assert_eq!(rows[0].line, 1);
        // Columns in another order, named by the header.
        let reordered = b"idempotency_key,uid,memo,amount\nk1,alice,Hi,0.0000001\n";
        let rows = parse_bulk(reordered, BulkFormat::Csv).unwrap();
        assert_eq!(ok(&rows), vec![(2, "alice".into(), 1, "k1".into())]);
    }

    #[test]
    fn bad_csv_rows_are_reported_by_line_and_the_rest_proceed() {
        let body =
            b"uid,amount,memo,idempotency_key\nalice,1.5,Hi,k1\nbob,abc,x,k2\ncarol,1.12345678,x,k3\ndave,1,x\nerin,1,x,k5\n,1,x,k6\n";
        let rows = parse_bulk(body, BulkFormat::Csv).unwrap();
        assert_eq!(errors(&rows), vec![3, 4, 5, 7]);
        assert_eq!(ok(&rows).len(), 2);
        let msg = rows[1].request.as_ref().unwrap_err();
        assert!(msg.contains("abc"), "{msg}");
        assert!(matches!(
            parse_bulk(b"uid,amount,memo\nalice,1,x\n", BulkFormat::Csv),
            Err(BulkError::BadHeader(_))
        ));
        assert_eq!(parse_bulk(b"\n\n", BulkFormat::Csv), Err(BulkError::Empty));
    }

    /// A header-less file whose first row holds a column name as a value (a memo that reads
    /// `memo`, a uid `amount`) was refused whole as a bad header: it is data.
    #[test]
    fn a_first_row_mentioning_a_column_name_is_data() {
        let body = b"alice,1.5,memo,k1\namount,2,uid,k2\n";
        let rows = parse_bulk(body, BulkFormat::Csv).unwrap();
        assert_eq!(
            ok(&rows),
            vec![
                (1, "alice".into(), 15_000_000, "k1".into()),
                (2, "amount".into(), 20_000_000, "k2".into())
            ]
        );
        assert_eq!(rows[0].request.as_ref().unwrap().memo, "memo");
        // A row made only of column names is still a header (with metadata, in any case).
        let body = b"UID,Amount,Memo,Idempotency_Key,metadata\nalice,1,x,k1,\"{\"\"a\"\":1}\"\n";
        let rows = parse_bulk(body, BulkFormat::Csv).unwrap();
        assert_eq!(
            ok(&rows),
            vec![(2, "alice".into(), 10_000_000, "k1".into())]
        );
        assert_eq!(
            rows[0].request.as_ref().unwrap().metadata,
            serde_json::json!({"a": 1})
        );
    }

    /// Found by fuzzing (`\0\r\x0e`): lines ended by a lone CR were all reported on line 1.
    #[test]
    fn cr_only_files_report_each_row_on_its_line() {
        let rows = parse_bulk(b"\0\r\x0e", BulkFormat::Csv).unwrap();
        assert_eq!(errors(&rows), vec![1, 2]);
        let body = b"alice,1,x,k1\rbob,zero,x,k2\r\rcarol,1,x,k3\r\ndave,0,x,k4\r";
        let rows = parse_bulk(body, BulkFormat::Csv).unwrap();
        assert_eq!(errors(&rows), vec![2, 5]);
        assert_eq!(
            ok(&rows).iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![1, 4]
        );
    }

    #[test]
    fn json_lines() {
        let body = br#"{"uid":"alice","amount":1.1234567,"memo":"m","idempotency_key":"k1","metadata":{"c":1}}

{"uid":"bob","amount":"2","memo":"m","idempotency_key":"k2"}
{"uid":"carol","amount":1,"memo":"m","idempotencyKey":"k3"}
not json
"#;
        let rows = parse_bulk(body, BulkFormat::JsonLines).unwrap();
        assert_eq!(
            ok(&rows),
            vec![
                (1, "alice".into(), 11_234_567, "k1".into()),
                (3, "bob".into(), 20_000_000, "k2".into())
            ]
        );
        assert_eq!(errors(&rows), vec![4, 5]);
        assert!(
            rows[2]
                .request
                .as_ref()
                .unwrap_err()
                .contains("idempotencyKey")
        );
    }

    #[test]
    fn formats_by_content_type_and_file() {
        assert_eq!(
            BulkFormat::from_content_type("text/csv; charset=utf-8"),
            Some(BulkFormat::Csv)
        );
        assert_eq!(
            BulkFormat::from_content_type("application/x-ndjson"),
            Some(BulkFormat::JsonLines)
        );
        assert_eq!(BulkFormat::from_content_type("application/json"), None);
        assert_eq!(
            BulkFormat::for_file(std::path::Path::new("a.txt"), b" {\"uid\":1}"),
            BulkFormat::JsonLines
        );
        assert_eq!(
            BulkFormat::for_file(std::path::Path::new("a.csv"), b"{"),
            BulkFormat::Csv
        );
    }
}
