// The built-in demo site's files, included by `src/site.rs`: the gallery (src/demo/) and the example
// apps it embeds, taken from examples/ so the gallery always runs the examples' own code. Lua files
// other than main.lua are modules the gallery `require`s when a tab is first opened.

/// Lua sources keyed by their path below `lua/`.
const DEMO_LUA: &[(&str, &str)] = &[
    ("main.lua", include_str!("lua/main.lua")),
    ("adder.lua", include_str!("../../examples/adder/lua/main.lua")),
    ("tasks.lua", include_str!("../../examples/tasks/lua/main.lua")),
    ("contacts.lua", include_str!("../../examples/contacts/lua/main.lua")),
];

/// Viewdefs keyed `Type.namespace`.
const DEMO_VIEWDEFS: &[(&str, &str)] = &[
    ("Demo.DEFAULT", include_str!("viewdefs/Demo.DEFAULT.html")),
    ("Adder.DEFAULT", include_str!("../../examples/adder/viewdefs/Adder.DEFAULT.html")),
    ("TasksApp.DEFAULT", include_str!("../../examples/tasks/viewdefs/TasksApp.DEFAULT.html")),
    ("Task.list-item", include_str!("../../examples/tasks/viewdefs/Task.list-item.html")),
    ("ContactApp.DEFAULT", include_str!("../../examples/contacts/viewdefs/ContactApp.DEFAULT.html")),
    ("ContactPresenter.list-item", include_str!("../../examples/contacts/viewdefs/ContactPresenter.list-item.html")),
    ("Contact.DEFAULT", include_str!("../../examples/contacts/viewdefs/Contact.DEFAULT.html")),
    ("ContactDraft.DEFAULT", include_str!("../../examples/contacts/viewdefs/ContactDraft.DEFAULT.html")),
    ("Contact.emergency-option", include_str!("../../examples/contacts/viewdefs/Contact.emergency-option.html")),
    (
        "lua.ViewList.emergency-option",
        include_str!("../../examples/contacts/viewdefs/lua.ViewList.emergency-option.html"),
    ),
    (
        "lua.ViewListItem.emergency-option",
        include_str!("../../examples/contacts/viewdefs/lua.ViewListItem.emergency-option.html"),
    ),
];
