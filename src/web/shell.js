// Older shells loaded /_ui/shell.js; it now just starts the frontend.
import "./main.js";
