//! SQL lists of stored names (`state IN ('received', 'approved')`), rendered from the enums that
//! define the names ([`crate::state`] and the ledger's own), so a state added or renamed in the
//! state machine cannot be missed by a hand-written query.

/// `('a', 'b')`: the names as an SQL list for `IN`. The names are our own `as_str()` constants
/// (lowercase words), never input, so quoting them is safe.
pub(crate) fn sql_list<I>(names: I) -> String
where
    I: IntoIterator<Item = &'static str>,
{
    let quoted: Vec<String> = names.into_iter().map(|n| format!("'{n}'")).collect();
    format!("({})", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use crate::ledger::sql_list::sql_list;
    use crate::state::PaymentState;

    #[test]
    fn renders_in_lists() {
        assert_eq!(
            sql_list(PaymentState::IN_FLIGHT.map(PaymentState::as_str)),
            "('received', 'approved', 'completing')"
        );
        assert_eq!(sql_list(["a"]), "('a')");
    }
}
