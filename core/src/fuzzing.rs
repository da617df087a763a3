//! What the property ("fuzz") tests of core's parsers share: their proptest settings and the
//! hostile inputs they draw from. Test builds only.
//!
//! Run them longer with `PROPTEST_CASES=10000 cargo test -p pi-payments-core fuzz`.

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Proptest's defaults (256 cases, or `PROPTEST_CASES`) without regression files: an input a
/// run finds is kept as a regular test beside the property instead.
pub(crate) fn config() -> Config {
    Config {
        failure_persistence: None,
        ..Config::default()
    }
}

/// Any JSON value, nested a few levels, with the strings and numbers parsers trip on.
pub(crate) fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        weird_text().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(weird_text(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text a parser may not expect: any unicode, numbers in every spelling, control and
/// direction characters, long runs.
pub(crate) fn weird_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[-+]?[0-9]{0,25}(\\.[0-9]{0,25})?([eE][-+]?[0-9]{1,12})?",
        "[a-zA-Z0-9]{0,70}",
        "[\\u{0}-\\u{1f}\\u{7f}\\u{202e}\\u{feff}\\u{fffd}\\u{1f600}\" ,\\\\]{0,12}",
        (0usize..3000).prop_map(|n| "9".repeat(n)),
    ]
}

/// A body as bytes: anything, or some JSON value's text.
pub(crate) fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        weird_text().prop_map(String::into_bytes),
    ]
}
