//! The dashboard's page frame, style and small formatting helpers (maud escapes every value).

use maud::{DOCTYPE, Markup, html};

/// Inline style: no external asset, so the dashboard works on an offline machine.
const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#2b1d52;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center;flex-wrap:wrap}
header a{color:#e9e3ff;text-decoration:none}header a:hover{text-decoration:underline}
header .brand{font-weight:600;color:#fff;margin-right:1em}
header form{margin-left:auto}
main{padding:1em 1.2em;max-width:1300px}
h1{font-size:1.35em;margin:.3em 0 .8em}h2{font-size:1.1em;margin:1.4em 0 .5em}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:.8em}
th,td{border-bottom:1px solid #e3e5ea;padding:.35em .55em;text-align:left;vertical-align:top}
th{background:#eceef3;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em;word-break:break-all}
.state{display:inline-block;padding:0 .45em;border-radius:.6em;background:#e6e8ee;font-size:.9em}
.state.needs_attention{background:#ffd8d2;color:#8a1c0b}.state.completed{background:#d5f2dc;color:#14532d}
.state.cancelled,.state.failed{background:#eee;color:#555}
.cards{display:flex;flex-wrap:wrap;gap:.8em}.card{background:#fff;border:1px solid #e3e5ea;border-radius:.4em;padding:.6em .9em;min-width:9em}
.card .n{font-size:1.5em;font-weight:600}.alert{color:#8a1c0b}
.flash{background:#e3f4e6;border:1px solid #9bd3a5;padding:.5em .8em;margin-bottom:1em}
.error{background:#fde8e4;border:1px solid #f0a293;padding:.5em .8em;margin-bottom:1em}
form.inline{display:inline}button{cursor:pointer;padding:.25em .8em}
.filters{background:#fff;padding:.6em;border:1px solid #e3e5ea;margin-bottom:.8em;display:flex;gap:.6em;flex-wrap:wrap;align-items:end}
.filters label{display:flex;flex-direction:column;font-size:.85em}
pre{background:#fff;border:1px solid #e3e5ea;padding:.6em;overflow:auto;max-height:30em}
.muted{color:#667}
td.nowrap{white-space:nowrap;word-break:normal}
"#;

/// A full page: the navigation, `title` and `body`.
pub fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) " · pi-payments operator" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href="/dashboard" { "pi-payments operator" }
                    nav data-testid="nav" {
                        a #nav-overview href="/dashboard" { "Overview" } " · "
                        a #nav-attention href="/dashboard/attention" { "Needs attention" } " · "
                        a #nav-payments href="/dashboard/payments" { "Payments" } " · "
                        a #nav-payouts href="/dashboard/payouts" { "Payouts" } " · "
                        a #nav-webhooks href="/dashboard/webhooks" { "Webhooks" } " · "
                        a #nav-batches href="/dashboard/batches" { "Bulk batches" } " · "
                        a #nav-drift href="/dashboard/drift" { "Drift report" }
                    }
                    form #logout method="post" action="/dashboard/logout" {
                        button #logout-button type="submit" { "Log out" }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The login form (`error`: why the last attempt failed).
pub fn login_page(next: &str, error: Option<&str>, configured: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { "Log in · pi-payments operator" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header { span.brand { "pi-payments operator" } }
                main {
                    h1 { "Operator login" }
                    @if let Some(e) = error { p #login-error .error { (e) } }
                    @if !configured {
                        p.error { "This server has no ADMIN_TOKEN: the dashboard and every operator route are closed. Set ADMIN_TOKEN and restart." }
                    }
                    form #login-form method="post" action="/dashboard/login" {
                        input type="hidden" name="next" value=(next);
                        p {
                            label for="token" { "ADMIN_TOKEN " }
                            input #token type="password" name="token" autocomplete="current-password" required size="48";
                        }
                        button #login-submit type="submit" { "Log in" }
                    }
                    p.muted { "The browser keeps a signed login for 8 hours, not the token. Scripts send Authorization: Bearer <ADMIN_TOKEN> instead." }
                }
            }
        }
    }
}

/// Unix ms as `2026-01-31 12:00:00 UTC`.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// An optional time, or a dash.
pub fn time_opt(ms: Option<i64>) -> String {
    ms.map(time).unwrap_or_else(|| "—".to_string())
}

/// A state as a badge carrying its name as a class and `data-state`.
pub fn state_badge(state: &str) -> Markup {
    html! { span class=(format!("state {state}")) data-state=(state) { (state) } }
}

/// A count that may have stopped at `cap`.
pub fn count(n: i64, cap: i64) -> String {
    if n >= cap {
        format!("{cap}+")
    } else {
        n.to_string()
    }
}

/// An error answer as a page, for a browser: `code` and `message` of the JSON body.
pub fn error_page(code: &str, message: &str) -> Markup {
    page(
        "Could not do that",
        html! {
            p #error .error data-code=(code) { (message) }
            p { a href="/dashboard" { "Back to the overview" } }
        },
    )
}
