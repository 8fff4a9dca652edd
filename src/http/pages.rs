//! Small HTML pages and the built-in assets.

/// The built-in shell served at `/<id>` when the site has no `html/index.html`.
pub const SHELL_HTML: &str = include_str!("../web/index.html");

/// Built-in frontend assets under `/_ui/`: (name, content type, body).
pub const ASSETS: &[(&str, &str, &str)] = &[
    ("shell.js", "text/javascript; charset=utf-8", include_str!("../web/shell.js")),
    ("shell.css", "text/css; charset=utf-8", include_str!("../web/shell.css")),
];

pub const ROBOTS_TXT: &str = "User-agent: *\nDisallow: /\n";

/// The page for an id that is not a live session.
pub const SESSION_ENDED_HTML: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Session ended</title></head>\n<body><h1>This session has ended</h1>\n<p>The session you tried to open does not exist any more. <a href=\"/\">Start a new session</a>.</p></body></html>\n";

/// The page for `GET /` at the session cap.
pub const AT_CAPACITY_HTML: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Busy</title></head>\n<body><h1>The server is busy</h1>\n<p>Too many sessions are open right now. Please try again in a moment.</p></body></html>\n";

pub const NOT_FOUND_HTML: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found</title></head>\n<body><h1>Not found</h1><p><a href=\"/\">Start a new session</a>.</p></body></html>\n";

/// Escapes text for HTML element content and attribute values.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The readable variable tree of `/<id>/variables`; refreshes itself every 2 s.
pub fn variables_page(items: &[serde_json::Value], changes: u64) -> String {
    let mut rows = String::new();
    for item in items {
        let depth = item["depth"].as_u64().unwrap_or(0) as usize;
        let text = |k: &str| escape(item[k].as_str().unwrap_or(""));
        let error = match &item["error"] {
            serde_json::Value::Null => String::new(),
            e => format!(
                " <span class=\"err\">{}: {}</span>",
                escape(e["code"].as_str().unwrap_or("")),
                escape(e["description"].as_str().unwrap_or(""))
            ),
        };
        rows.push_str(&format!(
            "<tr><td style=\"padding-left:{}em\">{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>\n",
            depth * 2 + 1,
            item["id"],
            text("owner"),
            text("path"),
            text("type"),
            escape(&item["value"].to_string()),
            error,
            item["watchers"],
            item["changeCount"],
        ));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
<title>Variables</title><style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}\
td,th{{border-bottom:1px solid #ddd;padding:.3em .8em;text-align:left;vertical-align:top}}code{{white-space:pre-wrap}}\
.err{{color:#b00020}}</style></head>\n<body><h1>Variables</h1><p>{} variables, {} changes delivered. \
<a href=\"variables.json\">JSON</a></p>\n<table><tr><th>id</th><th>owner</th><th>path</th><th>type</th><th>value</th>\
<th>watchers</th><th>changes</th></tr>\n{}</table></body></html>\n",
        items.len(),
        changes,
        rows
    )
}
