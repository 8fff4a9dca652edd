//! Small HTML pages and the built-in assets.

/// The built-in shell served at `/<id>` when the site has no `html/index.html`.
pub const SHELL_HTML: &str = include_str!("../web/index.html");

/// A JavaScript module of `src/web/` as an asset entry.
macro_rules! js {
    ($name:literal) => {
        ($name, "text/javascript; charset=utf-8", include_str!(concat!("../web/", $name)))
    };
}

/// Built-in frontend assets under `/_ui/`: (name, content type, body). The frontend is plain ES modules
/// (docs/attributes.md lists what they implement), so every module is listed here and imported by relative URL.
pub const ASSETS: &[(&str, &str, &str)] = &[
    js!("main.js"),
    js!("bootstrap.js"),
    js!("client.js"),
    js!("connection.js"),
    js!("outbox.js"),
    js!("store.js"),
    js!("viewdefs.js"),
    js!("view.js"),
    js!("viewlist.js"),
    js!("bindings.js"),
    js!("controls.js"),
    js!("values.js"),
    js!("keys.js"),
    js!("errors.js"),
    js!("problems.js"),
    js!("router.js"),
    js!("reveal.js"),
    js!("scroll.js"),
    js!("status.js"),
    js!("style.js"),
    js!("shell.js"),
    // The base stylesheet of the built-in shell (sites with their own html/ may link it).
    ("base.css", CSS, include_str!("../web/base.css")),
    // The built-in demo's gallery and the stylesheets of the example apps it embeds.
    ("demo/gallery.css", CSS, include_str!("../demo/gallery.css")),
    ("demo/adder.css", CSS, include_str!("../../examples/adder/html/app.css")),
    ("demo/tasks.css", CSS, include_str!("../../examples/tasks/html/app.css")),
    ("demo/contacts.css", CSS, include_str!("../../examples/contacts/html/app.css")),
];

const CSS: &str = "text/css; charset=utf-8";

pub const ROBOTS_TXT: &str = "User-agent: *\nDisallow: /\n";

/// The page for an id that is not a live session.
pub const SESSION_ENDED_HTML: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Session ended</title>\n<style>body{margin:0;min-height:100vh;display:grid;place-items:center;background:#f5f6f8;color:#1f2430;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}main{background:#fff;padding:32px 40px;border-radius:12px;box-shadow:0 4px 24px rgba(0,0,0,.08);max-width:420px}h1{font-size:22px;margin:0 0 8px}a{color:#3451b2;font-weight:600}</style></head>\n<body><main><h1>This session has ended.</h1>\n<p>The session you tried to open does not exist any more. <a href=\"/\">Start a new session</a></p></main></body></html>\n";

/// The page for `GET /` at the session cap.
pub const AT_CAPACITY_HTML: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Busy</title></head>\n<body><h1>The server is busy</h1>\n<p>Too many sessions are open right now. Please try again in a moment.</p></body></html>\n";

/// The page for `GET /` over this client's session cap or creation rate.
pub const TOO_MANY_HTML: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Too many sessions</title></head>\n<body><h1>Too many new sessions</h1>\n<p>Too many sessions were started from your address. Please try again in a moment.</p></body></html>\n";

pub const NOT_FOUND_HTML: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found</title></head>\n<body><h1>Not found</h1><p><a href=\"/\">Start a new session</a>.</p></body></html>\n";

/// The marker the frontend reads to show app errors to the author (`--dev`, `--watch`).
pub const DEV_META: &str = "<meta name=\"ui-gateway-dev\" content=\"on\">";

/// Adds [`DEV_META`] to a shell page: into `<head>` when it has one, else in front (a site's own
/// `html/index.html` may be any valid HTML, where `<head>` is optional).
pub fn mark_dev(page: &str) -> String {
    let lower = page.to_ascii_lowercase();
    let open = ["<head>", "<head "].iter().filter_map(|t| lower.find(t)).min();
    match open.and_then(|i| lower[i..].find('>').map(|j| i + j + 1)) {
        Some(at) => format!("{}\n{DEV_META}{}", &page[..at], &page[at..]),
        None => format!("{DEV_META}\n{page}"),
    }
}

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

/// `GET /` when the new session could not be built (its `main.lua` failed the host or overran the
/// watchdog): 500.
pub const INTERNAL_ERROR_HTML: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error</title></head>\n<body><h1>Something went wrong</h1><p>The session could not be started. <a href=\"/\">Try again</a>.</p></body></html>\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_marker_goes_into_the_head_or_in_front() {
        let marked = mark_dev(SHELL_HTML);
        let head = marked.find("<head>").unwrap();
        assert!(marked.find(DEV_META).unwrap() > head);
        assert!(marked.find(DEV_META).unwrap() < marked.find("</head>").unwrap());
        assert_eq!(mark_dev("<HEAD lang=x><title>t</title>"), format!("<HEAD lang=x>\n{DEV_META}<title>t</title>"));
        assert_eq!(mark_dev("<div ui-app></div>"), format!("{DEV_META}\n<div ui-app></div>"));
        assert_eq!(mark_dev("<header>x</header>"), format!("{DEV_META}\n<header>x</header>"));
        assert!(!SHELL_HTML.contains(DEV_META), "production pages carry no marker");
    }
}
