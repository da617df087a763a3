//! Bulk payout import, shared by `POST /payouts/bulk` and `pi-payments payouts import` so that a
//! file is read and recorded the same way by both: [`parse`] turns a CSV or JSON-lines file into
//! rows (each a request or the reason it was refused), [`record`] opens a batch for them and
//! records the good ones in the ledger, enqueueing their payout jobs.

pub mod parse;
pub mod record;

pub use parse::{
    BulkError, BulkFormat, BulkRow, CSV_COLUMNS, MAX_BULK_ROWS, PayoutRequestJson, RejectedRow,
    parse_bulk, parse_json_request,
};
pub use record::{
    BulkImport, BulkOutcome, BulkRecordError, IMPORT_CHUNK_ROWS, ImportPace, ImportStopped,
    SQLITE_IMPORT_PAUSE, run_import, start_import,
};
