//! Properties: the names the gateway itself gives meaning to, and the one table that says who may set
//! which of them (docs/variables.md "Properties"). The tracker, the session's mirror of backend-owned
//! variables and the Lua API all ask [`decide`]; none of them matches property names on its own.

/// Property names with a meaning to the gateway. Every other name is the app's own.
pub mod name {
    /// The variable's path, relative to its parent (creator's, fixed at create).
    pub const PATH: &str = "path";
    /// `r`, `w`, `rw` or `action` (creator's, fixed at create).
    pub const ACCESS: &str = "access";
    /// A type name: the variable's value is a new object of that type (creator's, fixed at create).
    pub const CREATE: &str = "create";
    /// A wrapper type put between the value and its children.
    pub const WRAPPER: &str = "wrapper";
    /// Lua code to run on variable 1 (hybrid mode); never stored.
    pub const LUA: &str = "lua";
    /// Viewdefs the gateway delivers to browsers; nobody else sets them.
    pub const VIEWDEFS: &str = "viewdefs";
    /// Development only: the site files a `--watch` reload refused or skipped, delivered to browsers
    /// on variable 1 like `viewdefs` (see [`crate::protocol::browser::SiteProblem`]); nobody else sets it.
    pub const SITE_PROBLEMS: &str = "siteProblems";
    /// The value's type, derived; Lua and backends may pin one.
    pub const TYPE: &str = "type";
    /// The priority bucket of the variable's value updates.
    pub const PRIORITY: &str = "priority";
}

/// Who sets a property.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Writer {
    Browser,
    Backend,
    Lua,
}

/// What happens to one property write.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Decision {
    /// Stored and reported.
    Store,
    /// `type` from Lua or a backend: pins the type shown when none is derived.
    Pin,
    /// Ignored without an error (`type`/`viewdefs` from browsers; `lua`, which the session runs).
    Drop,
    /// Refused with `access-denied`; the message's other properties still apply.
    Deny,
}

/// The rule table. `at_create`: the write comes with the variable's creation (or from the owner of a
/// backend-owned variable, which may restate its own creator properties).
pub fn decide(property: &str, writer: Writer, at_create: bool) -> Decision {
    use name::*;
    match property {
        PATH | ACCESS | CREATE if at_create => Decision::Store,
        PATH | ACCESS | CREATE => Decision::Deny,
        LUA if writer == Writer::Browser => Decision::Deny,
        LUA => Decision::Drop,
        VIEWDEFS | SITE_PROBLEMS if writer == Writer::Backend => Decision::Deny,
        VIEWDEFS | SITE_PROBLEMS => Decision::Drop,
        TYPE if writer == Writer::Browser => Decision::Drop,
        TYPE => Decision::Pin,
        WRAPPER if writer == Writer::Browser && !at_create => Decision::Deny,
        _ => Decision::Store,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table, spelled out: a change here is a protocol change.
    #[test]
    fn who_may_set_what() {
        use Decision::*;
        use Writer::*;
        let rows: [(&str, Writer, bool, Decision); 18] = [
            ("path", Browser, true, Store),
            ("path", Browser, false, Deny),
            ("access", Lua, false, Deny),
            ("create", Backend, true, Store),
            ("lua", Browser, false, Deny),
            ("lua", Backend, false, Drop),
            ("lua", Lua, true, Drop),
            ("viewdefs", Backend, true, Deny),
            ("viewdefs", Browser, false, Drop),
            ("siteProblems", Backend, false, Deny),
            ("siteProblems", Browser, false, Drop),
            ("type", Browser, true, Drop),
            ("type", Lua, false, Pin),
            ("type", Backend, true, Pin),
            ("wrapper", Browser, false, Deny),
            ("wrapper", Browser, true, Store),
            ("wrapper", Lua, false, Store),
            ("namespace", Browser, false, Store),
        ];
        for (property, writer, at_create, expected) in rows {
            assert_eq!(decide(property, writer, at_create), expected, "{property} by {writer:?} at_create={at_create}");
        }
    }
}
