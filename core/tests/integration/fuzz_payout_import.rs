//! Fuzzing the bulk payout import (issue 17): CSV and JSON-lines files of good, bad and blank
//! lines in any mix, and arbitrary bytes. Parsing never panics; every bad line is reported on
//! its own line number and every good one read exactly; importing into a SQLite ledger stores
//! the good rows and nothing of the bad ones.
//!
//! Run longer with `PROPTEST_CASES=10000 cargo test -p pi-payments-core --test integration fuzz`.

use crate::support::ledger::sqlite;
use pi_payments_core::PiAmount;
use pi_payments_core::jobs::RecordingQueue;
use pi_payments_core::ledger::Ledger;
use pi_payments_core::payout_import::{
    BulkError, BulkFormat, BulkRow, ImportPace, parse_bulk, run_import, start_import,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

/// Proptest's settings: `PROPTEST_CASES` if set, else `cases`; no regression files (a failure
/// found is kept as a regular test).
fn config(cases: u32) -> Config {
    let mut config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// A good payout row: what the parser must read back exactly.
#[derive(Clone, Debug)]
struct Good {
    uid: String,
    amount: PiAmount,
    /// Written as a JSON number rather than a string (JSON lines only).
    amount_as_number: bool,
    memo: String,
}

/// One line of a generated file.
#[derive(Clone, Debug)]
enum Line {
    Good(Good),
    /// A line the parser must refuse: its text, before the key is filled in.
    Bad(Bad),
    /// Nothing on it (whitespace, or only empty CSV fields): not a row.
    Blank(&'static str),
}

/// The ways a line is wrong, for both formats.
#[derive(Clone, Debug)]
enum Bad {
    Amount(&'static str),
    EmptyUid,
    EmptyMemo,
    EmptyKey,
    ControlInKey,
    LongMemo,
    MissingColumns,
    /// Not a row at all: text that is no JSON object / bytes that are no UTF-8.
    Garbage,
    /// JSON lines only: a field of the wrong type, an unknown field, bad metadata.
    WrongType,
    UnknownField,
    ReservedMetadata,
}

fn amount() -> impl Strategy<Value = PiAmount> {
    prop_oneof![(1i64..=i64::MAX), (1i64..=100_000_000_000), (1i64..=1000),]
        .prop_map(|s| PiAmount::from_stroops(s).unwrap())
}

fn good() -> impl Strategy<Value = Good> {
    (
        "[a-zA-Z0-9][a-zA-Z0-9_.:-]{0,40}",
        amount(),
        any::<bool>(),
        // Commas, quotes and non-ASCII need CSV quoting; the leading character is no space.
        "[A-Za-z0-9#!?é😀\u{202e}][A-Za-z0-9 ,\"#!?é😀\u{202e}]{0,60}",
    )
        .prop_map(|(uid, amount, amount_as_number, memo)| Good {
            uid,
            amount,
            amount_as_number,
            memo,
        })
}

fn bad() -> impl Strategy<Value = Bad> {
    prop_oneof![
        prop::sample::select(vec![
            "abc",
            "0",
            "-1",
            "1.00000001",
            "1e999",
            "1e-2147483648",
            "NaN",
            "99999999999999999999",
            "922337203685.4775808",
            "",
        ])
        .prop_map(Bad::Amount),
        Just(Bad::EmptyUid),
        Just(Bad::EmptyMemo),
        Just(Bad::EmptyKey),
        Just(Bad::ControlInKey),
        Just(Bad::LongMemo),
        Just(Bad::MissingColumns),
        Just(Bad::Garbage),
        Just(Bad::WrongType),
        Just(Bad::UnknownField),
        Just(Bad::ReservedMetadata),
    ]
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        4 => good().prop_map(Line::Good),
        3 => bad().prop_map(Line::Bad),
        1 => prop::sample::select(vec!["", "   ", "\t"]).prop_map(Line::Blank),
    ]
}

/// A generated file: its lines, whether CSV starts with a header, and its line break.
#[derive(Clone, Debug)]
struct File {
    lines: Vec<Line>,
    header: bool,
    crlf: bool,
}

fn file() -> impl Strategy<Value = File> {
    (
        prop::collection::vec(line(), 0..40),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(lines, header, crlf)| File {
            lines,
            header,
            crlf,
        })
}

/// The idempotency key of line `i` of file `tag`: good and bad lines apart, so that the ledger
/// can be asked whether anything of a bad line was stored.
fn key(tag: &str, i: usize, line: &Line) -> String {
    match line {
        Line::Bad(_) => format!("bad-{tag}-{i}"),
        _ => format!("good-{tag}-{i}"),
    }
}

fn csv_fields(fields: &[&[u8]]) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    writer.write_record(fields).unwrap();
    let mut out = writer.into_inner().unwrap();
    out.pop();
    out
}

fn csv_line(line: &Line, key: &str) -> Vec<u8> {
    let ok_amount = "1.5";
    match line {
        Line::Blank(text) => text.as_bytes().to_vec(),
        Line::Good(g) => csv_fields(&[
            g.uid.as_bytes(),
            g.amount.to_string().as_bytes(),
            g.memo.as_bytes(),
            key.as_bytes(),
        ]),
        Line::Bad(bad) => {
            let long = "m".repeat(501);
            let control = format!("{key}\u{1}");
            let (uid, amount, memo, key): (&[u8], &[u8], &[u8], &[u8]) = match bad {
                Bad::Amount(a) => (b"u", a.as_bytes(), b"memo", key.as_bytes()),
                Bad::EmptyUid => (b"", ok_amount.as_bytes(), b"memo", key.as_bytes()),
                Bad::EmptyMemo => (b"u", ok_amount.as_bytes(), b"  ", key.as_bytes()),
                Bad::EmptyKey => (b"u", ok_amount.as_bytes(), b"memo", b""),
                Bad::ControlInKey => (b"u", ok_amount.as_bytes(), b"memo", control.as_bytes()),
                Bad::LongMemo => (b"u", ok_amount.as_bytes(), long.as_bytes(), key.as_bytes()),
                Bad::MissingColumns => {
                    return csv_fields(&[b"u", ok_amount.as_bytes()]);
                }
                Bad::Garbage | Bad::WrongType => {
                    (b"u", ok_amount.as_bytes(), b"m\xffm", key.as_bytes())
                }
                Bad::UnknownField | Bad::ReservedMetadata => {
                    (b"u", b"1.5.1", b"memo", key.as_bytes())
                }
            };
            csv_fields(&[uid, amount, memo, key])
        }
    }
}

fn json_line(line: &Line, key: &str) -> Vec<u8> {
    let text = match line {
        Line::Blank(text) => text.to_string(),
        Line::Good(g) => {
            let amount = if g.amount_as_number {
                g.amount.to_string()
            } else {
                json!(g.amount.to_string()).to_string()
            };
            format!(
                r#"{{"uid":{},"amount":{amount},"memo":{},"idempotency_key":{}}}"#,
                json!(g.uid),
                json!(g.memo),
                json!(key)
            )
        }
        Line::Bad(bad) => {
            let row = |uid: &str, amount: serde_json::Value, memo: &str, key: &str| json!({"uid": uid, "amount": amount, "memo": memo, "idempotency_key": key});
            match bad {
                Bad::Amount(a) => row("u", json!(a), "memo", key).to_string(),
                Bad::EmptyUid => row(" ", json!("1.5"), "memo", key).to_string(),
                Bad::EmptyMemo => row("u", json!("1.5"), " ", key).to_string(),
                Bad::EmptyKey => row("u", json!("1.5"), "memo", "").to_string(),
                Bad::ControlInKey => {
                    row("u", json!("1.5"), "memo", &format!("{key}\n")).to_string()
                }
                Bad::LongMemo => row("u", json!("1.5"), &"m".repeat(501), key).to_string(),
                Bad::MissingColumns => json!({"uid": "u", "amount": "1.5"}).to_string(),
                Bad::Garbage => format!("uid,1.5,memo,{key}"),
                Bad::WrongType => json!({"uid": "u", "amount": true, "memo": "m",
                    "idempotency_key": key})
                .to_string(),
                Bad::UnknownField => json!({"uid": "u", "amount": "1.5", "memo": "m",
                    "idempotencyKey": key})
                .to_string(),
                Bad::ReservedMetadata => json!({"uid": "u", "amount": "1.5", "memo": "m",
                    "idempotency_key": key, "metadata": {"payout_id": "po_x"}})
                .to_string(),
            }
        }
    };
    text.into_bytes()
}

/// The file's bytes in `format`; its rows start on line 2 when a CSV header leads.
fn render(file: &File, format: BulkFormat, tag: &str) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut first_line = 1;
    if file.header && format == BulkFormat::Csv {
        out.extend_from_slice(b"uid,amount,memo,idempotency_key");
        out.extend_from_slice(if file.crlf { b"\r\n" } else { b"\n" });
        first_line = 2;
    }
    for (i, line) in file.lines.iter().enumerate() {
        let key = key(tag, i, line);
        out.extend(match format {
            BulkFormat::Csv => csv_line(line, &key),
            BulkFormat::JsonLines => json_line(line, &key),
        });
        out.extend_from_slice(if file.crlf { b"\r\n" } else { b"\n" });
    }
    (out, first_line)
}

/// Check the parse of `file` against what it was made of; the number of good rows.
fn check_rows(
    file: &File,
    format: BulkFormat,
    parsed: &Result<Vec<BulkRow>, BulkError>,
    first_line: u64,
    tag: &str,
) -> Result<usize, TestCaseError> {
    let expected: Vec<(u64, usize, &Line)> = file
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !matches!(l, Line::Blank(_)))
        .map(|(i, l)| (first_line + i as u64, i, l))
        .collect();
    let rows = match parsed {
        Err(BulkError::Empty) => {
            prop_assert!(expected.is_empty(), "rows lost: {parsed:?}");
            return Ok(0);
        }
        Err(other) => return Err(TestCaseError::fail(format!("whole file refused: {other}"))),
        Ok(rows) => rows,
    };
    let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
    let wanted: Vec<u64> = expected.iter().map(|(n, _, _)| *n).collect();
    prop_assert_eq!(
        lines,
        wanted,
        "every non-blank line is one row, on its line"
    );
    for (row, (n, i, line)) in rows.iter().zip(&expected) {
        match (line, &row.request) {
            (Line::Good(g), Ok(req)) => {
                prop_assert_eq!(req.uid.as_str(), g.uid.as_str());
                prop_assert_eq!(req.amount, g.amount);
                // CSV fields are trimmed; a JSON string is taken as it is.
                let memo = match format {
                    BulkFormat::Csv => g.memo.trim(),
                    BulkFormat::JsonLines => g.memo.as_str(),
                };
                prop_assert_eq!(req.memo.as_str(), memo);
                prop_assert_eq!(&req.idempotency_key, &key(tag, *i, line));
            }
            (Line::Bad(_), Err(reason)) => prop_assert!(!reason.is_empty()),
            (line, result) => {
                return Err(TestCaseError::fail(format!(
                    "line {n} ({line:?}) read as {result:?}"
                )));
            }
        }
    }
    Ok(expected
        .iter()
        .filter(|(_, _, l)| matches!(l, Line::Good(_)))
        .count())
}

fn format() -> impl Strategy<Value = BulkFormat> {
    prop_oneof![Just(BulkFormat::Csv), Just(BulkFormat::JsonLines)]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn fuzz_every_line_of_a_file_is_read_or_reported(file in file(), format in format()) {
        let (bytes, first_line) = render(&file, format, "t");
        check_rows(&file, format, &parse_bulk(&bytes, format), first_line, "t")?;
    }

    /// Anything at all: rows or a refusal of the whole file, never a panic; rows in file
    /// order on lines the file has, and every accepted row a valid request.
    #[test]
    fn fuzz_any_bytes_parse_without_panic(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2000),
            "(?s).{0,500}".prop_map(String::into_bytes),
            prop::collection::vec(
                prop::sample::select(vec![&b","[..], b"\"", b"\n", b"\r", b"{", b"}", b"uid",
                    b"amount", b"memo", b"idempotency_key", b"1.5", b"\xef\xbb\xbf", b" "]),
                0..60,
            )
            .prop_map(|parts| parts.concat()),
        ],
        format in format(),
    ) {
        // CSV lines end at \n, \r\n or a lone \r; JSON lines at \n only.
        let breaks = (0..bytes.len()).filter(|&i| match bytes[i] {
            b'\n' => true,
            b'\r' => format == BulkFormat::Csv && bytes.get(i + 1) != Some(&b'\n'),
            _ => false,
        });
        let max_line = breaks.count() as u64 + 1;
        if let Ok(rows) = parse_bulk(&bytes, format) {
            let mut last = 0;
            for row in &rows {
                prop_assert!(row.line > last && row.line <= max_line, "{rows:?}");
                last = row.line;
                if let Ok(req) = &row.request {
                    prop_assert!(req.validate().is_ok());
                }
            }
        }
    }
}

/// Import generated files into one SQLite ledger: the good rows are stored, reported as
/// accepted, and nothing with a bad line's key ever is.
#[test]
fn fuzz_an_import_stores_the_good_lines_and_nothing_of_the_bad() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (ledger, cleanup) = rt.block_on(sqlite());
    let queue = RecordingQueue::new();
    let case = std::sync::atomic::AtomicU64::new(0);
    let mut runner = TestRunner::new(config(48));
    let result = runner.run(&(file(), format()), |(file, format)| {
        let tag = case
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_string();
        let (bytes, first_line) = render(&file, format, &tag);
        let parsed = parse_bulk(&bytes, format);
        let good = check_rows(&file, format, &parsed, first_line, &tag)?;
        let Ok(rows) = parsed else { return Ok(()) };
        let bad = rows.iter().filter(|r| r.request.is_err()).count();
        rt.block_on(async {
            let before = count(&ledger, "SELECT COUNT(*) FROM payouts").await;
            let started = start_import(&ledger, "fuzz", rows).await.unwrap();
            let outcome = run_import(
                &ledger,
                &queue,
                started,
                ImportPace::IN_PROCESS,
                &mut |_| {},
            )
            .await
            .unwrap();
            let after = count(&ledger, "SELECT COUNT(*) FROM payouts").await;
            prop_assert_eq!(outcome.accepted as usize, good);
            prop_assert_eq!(outcome.duplicates, 0);
            prop_assert_eq!(outcome.rejected.len(), bad);
            prop_assert_eq!((after - before) as usize, good);
            let stored_bad = count(
                &ledger,
                "SELECT COUNT(*) FROM payouts WHERE idempotency_key LIKE 'bad-%'",
            )
            .await;
            prop_assert_eq!(stored_bad, 0);
            Ok(())
        })
    });
    rt.block_on(cleanup.done(ledger));
    if let Err(e) = result {
        panic!("{e}");
    }
}

async fn count(ledger: &Ledger, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(ledger.pool())
        .await
        .unwrap()
}
