//! The wire protocols, in one place: message and frame types, their parsing and encoding, and the error
//! codes. The browser side, the backend side and (later) the backend client library all use this module;
//! nothing else in the crate spells a message type or an error code.

pub mod backend;
pub mod browser;
pub mod code;
pub mod message;
pub mod priority;
pub mod property;

pub use browser::{
    encode_server_frame, parse_client_frame, ClientFrame, ErrorOut, FrameError, FrameLimits, Properties, ServerMessage,
    SiteProblem, UpdateOut,
};
pub use code::{close, ErrorCode};
pub use message::{Create, ErrorReport, Message, MessageError, PropertyWrite, Side, Update};
pub use priority::Priority;
pub use property::{decide, Decision, Writer};
