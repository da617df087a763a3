//! `GET /docs`: the OpenAPI document rendered as one self-contained HTML page (no JavaScript,
//! no assets from elsewhere), so that the reference reads the same on a machine without
//! internet access as on any other. Swagger UI and its kin load their scripts at build or view
//! time; this page is plain HTML made on the server from the same document as
//! `/openapi.json`, so it cannot say anything the document does not.
//!
//! It shows, per tag, every operation (method, path, summary, description, who may call it,
//! parameters, request body, responses), then every schema with its properties.

use serde_json::Value;
use std::fmt::Write;

/// The HTTP methods an OpenAPI path item may hold, in the order the page lists them.
const METHODS: [&str; 8] = [
    "get", "post", "put", "patch", "delete", "head", "options", "trace",
];

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:0 auto;padding:1rem 1.5rem;line-height:1.45;color:#1d2330}\
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #dde;padding-bottom:.2rem;margin-top:2.5rem}\
section.op{border:1px solid #dde;border-radius:6px;padding:.2rem 1rem 1rem;margin:1rem 0}\
.m{display:inline-block;min-width:4.2rem;text-align:center;font-weight:700;border-radius:4px;padding:0 .4rem;color:#fff;background:#556}\
.m-get{background:#2f7d32}.m-post{background:#1f5fa8}.m-put,.m-patch{background:#a06400}.m-delete{background:#b3261e}\
code{background:#f2f3f7;padding:0 .25rem;border-radius:3px}table{border-collapse:collapse;width:100%;margin:.4rem 0}\
th,td{border:1px solid #dde;padding:.25rem .5rem;text-align:left;vertical-align:top}th{background:#f6f7fb}\
nav ul{columns:2}";

/// Render `document` (an OpenAPI 3 document) as an HTML page.
pub fn render(document: &utoipa::openapi::OpenApi) -> String {
    let value = serde_json::to_value(document).unwrap_or(Value::Null);
    render_value(&value)
}

/// [`render`] for a document already in JSON form.
pub fn render_value(doc: &Value) -> String {
    let title = text(&doc["info"]["title"]).unwrap_or("API");
    let version = text(&doc["info"]["version"]).unwrap_or("");
    let mut page = String::with_capacity(64 * 1024);
    let _ = write!(
        page,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} reference</title><style>{STYLE}</style></head><body>\
         <h1>{t}</h1><p>Version {v} · the same document as JSON: <a href=\"/openapi.json\"><code>/openapi.json</code></a></p>",
        t = escape(title),
        v = escape(version),
    );
    if let Some(description) = text(&doc["info"]["description"]) {
        page.push_str(&paragraphs(description));
    }
    let operations = operations(doc);
    write_contents(&mut page, doc, &operations);
    write_security_schemes(&mut page, doc);
    for (tag, description) in tags(doc, &operations) {
        let _ = write!(
            page,
            "<h2 id=\"tag-{a}\">{t}</h2>",
            a = anchor(&tag),
            t = escape(&tag)
        );
        if let Some(description) = description {
            let _ = write!(page, "<p>{}</p>", inline(&description));
        }
        for op in operations.iter().filter(|op| op.tag == tag) {
            write_operation(&mut page, doc, op);
        }
    }
    write_schemas(&mut page, doc);
    page.push_str("</body></html>");
    page
}

/// One operation of the document, with where it sits.
struct Operation<'a> {
    method: &'static str,
    path: &'a str,
    tag: String,
    op: &'a Value,
}

impl Operation<'_> {
    fn anchor(&self) -> String {
        format!("op-{}-{}", self.method, anchor(self.path))
    }
}

fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let mut out = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in METHODS {
                let op = &item[method];
                if op.is_object() {
                    let tag = op["tags"][0].as_str().unwrap_or("other").to_string();
                    out.push(Operation {
                        method,
                        path,
                        tag,
                        op,
                    });
                }
            }
        }
    }
    out
}

/// The tags in the document's order, then any tag only an operation names.
fn tags(doc: &Value, operations: &[Operation<'_>]) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = doc["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .filter_map(|t| {
                    let name = text(&t["name"])?.to_string();
                    Some((name, text(&t["description"]).map(str::to_string)))
                })
                .collect()
        })
        .unwrap_or_default();
    for op in operations {
        if !out.iter().any(|(name, _)| *name == op.tag) {
            out.push((op.tag.clone(), None));
        }
    }
    out.retain(|(name, _)| operations.iter().any(|op| op.tag == *name));
    out
}

fn write_contents(page: &mut String, doc: &Value, operations: &[Operation<'_>]) {
    page.push_str("<nav><h2>Contents</h2><ul>");
    for (tag, _) in tags(doc, operations) {
        let _ = write!(
            page,
            "<li><a href=\"#tag-{}\">{}</a><ul>",
            anchor(&tag),
            escape(&tag)
        );
        for op in operations.iter().filter(|op| op.tag == tag) {
            let _ = write!(
                page,
                "<li><a href=\"#{}\"><code>{} {}</code></a></li>",
                op.anchor(),
                op.method.to_uppercase(),
                escape(op.path)
            );
        }
        page.push_str("</ul></li>");
    }
    page.push_str("<li><a href=\"#schemas\">Schemas</a></li></ul></nav>");
}

fn write_security_schemes(page: &mut String, doc: &Value) {
    let Some(schemes) = doc["components"]["securitySchemes"].as_object() else {
        return;
    };
    page.push_str(
        "<h2 id=\"auth\">Authentication</h2><table><tr><th>Name</th><th>How</th><th>What</th></tr>",
    );
    for (name, scheme) in schemes {
        let how = match text(&scheme["type"]) {
            Some("http") => format!(
                "<code>Authorization: {} …</code>",
                escape(&capitalize(text(&scheme["scheme"]).unwrap_or("")))
            ),
            Some("apiKey") => format!(
                "{} <code>{}</code>",
                escape(text(&scheme["in"]).unwrap_or("")),
                escape(text(&scheme["name"]).unwrap_or(""))
            ),
            other => escape(other.unwrap_or("")),
        };
        let _ = write!(
            page,
            "<tr><td id=\"auth-{a}\"><code>{n}</code></td><td>{how}</td><td>{d}</td></tr>",
            a = anchor(name),
            n = escape(name),
            d = inline(text(&scheme["description"]).unwrap_or("")),
        );
    }
    page.push_str("</table>");
}

fn write_operation(page: &mut String, doc: &Value, op: &Operation<'_>) {
    let _ = write!(
        page,
        "<section class=\"op\" id=\"{id}\"><h3><span class=\"m m-{m}\">{mu}</span> <code>{p}</code></h3>",
        id = op.anchor(),
        m = op.method,
        mu = op.method.to_uppercase(),
        p = escape(op.path),
    );
    if let Some(summary) = text(&op.op["summary"]) {
        let _ = write!(page, "<p><strong>{}</strong></p>", inline(summary));
    }
    if let Some(description) = text(&op.op["description"]) {
        page.push_str(&paragraphs(description));
    }
    if let Some(id) = text(&op.op["operationId"]) {
        let _ = write!(page, "<p>Operation id: <code>{}</code></p>", escape(id));
    }
    write_operation_security(page, doc, op.op);
    if let Some(parameters) = op.op["parameters"].as_array().filter(|p| !p.is_empty()) {
        page.push_str("<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Required</th><th>Type</th><th>Description</th></tr>");
        for parameter in parameters {
            let _ = write!(
                page,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(text(&parameter["name"]).unwrap_or("")),
                escape(text(&parameter["in"]).unwrap_or("")),
                if parameter["required"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                },
                type_html(&parameter["schema"]),
                inline(text(&parameter["description"]).unwrap_or("")),
            );
        }
        page.push_str("</table>");
    }
    if let Some(body) = op.op["requestBody"].as_object() {
        page.push_str("<h4>Request body</h4>");
        if let Some(description) = body.get("description").and_then(Value::as_str) {
            let _ = write!(page, "<p>{}</p>", inline(description));
        }
        write_content(page, body.get("content").unwrap_or(&Value::Null));
    }
    if let Some(responses) = op.op["responses"].as_object() {
        page.push_str(
            "<h4>Responses</h4><table><tr><th>Status</th><th>Description</th><th>Body</th></tr>",
        );
        for (status, response) in responses {
            let mut body = String::new();
            write_content(&mut body, &response["content"]);
            let _ = write!(
                page,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                escape(status),
                inline(text(&response["description"]).unwrap_or("")),
                body
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</section>");
}

/// Who may call an operation: its own `security`, else the document's, else anyone.
fn write_operation_security(page: &mut String, doc: &Value, op: &Value) {
    let requirements = op
        .get("security")
        .or_else(|| doc.get("security"))
        .and_then(Value::as_array);
    let Some(requirements) = requirements.filter(|r| !r.is_empty()) else {
        page.push_str("<p>Authentication: none.</p>");
        return;
    };
    let options: Vec<String> = requirements
        .iter()
        .map(|requirement| match requirement.as_object() {
            Some(names) if !names.is_empty() => names
                .keys()
                .map(|name| {
                    format!(
                        "<a href=\"#auth-{}\"><code>{}</code></a>",
                        anchor(name),
                        escape(name)
                    )
                })
                .collect::<Vec<_>>()
                .join(" and "),
            _ => "none".to_string(),
        })
        .collect();
    let _ = write!(page, "<p>Authentication: {}.</p>", options.join(" or "));
}

/// A request or response `content` map: each media type and its schema.
fn write_content(page: &mut String, content: &Value) {
    let Some(content) = content.as_object() else {
        return;
    };
    for (media_type, media) in content {
        let _ = write!(
            page,
            "<code>{}</code>: {}",
            escape(media_type),
            type_html(&media["schema"])
        );
        if let Some(description) = text(&media["schema"]["description"]) {
            let _ = write!(page, " — {}", inline(description));
        }
        page.push_str("<br>");
    }
}

fn write_schemas(page: &mut String, doc: &Value) {
    page.push_str("<h2 id=\"schemas\">Schemas</h2>");
    let Some(schemas) = doc["components"]["schemas"].as_object() else {
        return;
    };
    for (name, schema) in schemas {
        let _ = write!(
            page,
            "<section class=\"op\" id=\"schema-{a}\"><h3><code>{n}</code></h3>",
            a = anchor(name),
            n = escape(name)
        );
        if let Some(description) = text(&schema["description"]) {
            page.push_str(&paragraphs(description));
        }
        match schema["properties"].as_object() {
            Some(properties) => {
                let required: Vec<&str> = schema["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                page.push_str("<table><tr><th>Field</th><th>Type</th><th>Required</th><th>Description</th></tr>");
                for (field, property) in properties {
                    let _ = write!(
                        page,
                        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        escape(field),
                        type_html(property),
                        if required.contains(&field.as_str()) {
                            "yes"
                        } else {
                            "no"
                        },
                        inline(text(&property["description"]).unwrap_or("")),
                    );
                }
                page.push_str("</table>");
            }
            None => {
                let _ = write!(page, "<p>Type: {}</p>", type_html(schema));
            }
        }
        if !schema["example"].is_null() {
            let _ = write!(
                page,
                "<p>Example: <code>{}</code></p>",
                escape(&schema["example"].to_string())
            );
        }
        page.push_str("</section>");
    }
}

/// A schema's type in a few words, linking referenced schemas.
fn type_html(schema: &Value) -> String {
    if let Some(reference) = text(&schema["$ref"]) {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!(
            "<a href=\"#schema-{}\"><code>{}</code></a>",
            anchor(name),
            escape(name)
        );
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(parts) = schema[combinator].as_array() {
            let joiner = if combinator == "allOf" {
                " and "
            } else {
                " or "
            };
            return parts.iter().map(type_html).collect::<Vec<_>>().join(joiner);
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .map(|v| format!("<code>{}</code>", escape(&v.to_string())))
            .collect();
        return format!("one of {}", values.join(", "));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.is_empty() {
        return "any JSON".to_string();
    }
    let shown: Vec<String> = types
        .iter()
        .map(|t| match *t {
            "array" => format!("array of {}", type_html(&schema["items"])),
            "null" => "null".to_string(),
            other => {
                let format = text(&schema["format"])
                    .map(|f| format!(" ({})", escape(f)))
                    .unwrap_or_default();
                format!("{}{format}", escape(other))
            }
        })
        .collect();
    shown.join(" or ")
}

fn text(value: &Value) -> Option<&str> {
    value.as_str()
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// An id made of the text's letters, digits and `_` (other characters become `-`).
fn anchor(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Escape text for HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A description as paragraphs: a blank line separates them, a single line break (from the
/// wrapping of doc comments) is a space.
fn paragraphs(text: &str) -> String {
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| format!("<p>{}</p>", inline(&p.replace('\n', " "))))
        .collect()
}

/// Escape text for HTML and show its `backquoted` parts as code (the descriptions' one bit
/// of Markdown).
fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", escape(part));
        } else {
            out.push_str(&escape(part));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::docs_page::*;
    use serde_json::json;

    #[test]
    fn text_from_the_document_is_escaped() {
        let doc = json!({
            "openapi": "3.1.0",
            "info": {"title": "<script>x</script>", "version": "1"},
            "paths": {"/a": {"get": {"summary": "a `<b>` c", "tags": ["t"],
                "responses": {"200": {"description": "ok"}}}}}
        });
        let page = render_value(&doc);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("<code>&lt;b&gt;</code>"));
        assert!(page.contains("<code>GET /a</code>"));
    }

    #[test]
    fn types_name_their_schemas() {
        assert_eq!(
            type_html(&json!({"$ref": "#/components/schemas/Order"})),
            "<a href=\"#schema-Order\"><code>Order</code></a>"
        );
        assert_eq!(
            type_html(&json!({"type": ["string", "null"], "format": "date-time"})),
            "string (date-time) or null"
        );
        assert_eq!(
            type_html(&json!({"type": "array", "items": {"type": "integer"}})),
            "array of integer"
        );
        assert_eq!(type_html(&json!({})), "any JSON");
    }
}
