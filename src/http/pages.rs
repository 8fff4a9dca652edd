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
