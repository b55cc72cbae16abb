//! The layout an import or a copy writes into: opened, or created crash-safely by the
//! store ([`crate::layout::Creation`]), and taken back with [`Destination::discard`] when
//! the transfer fails or was a dry run.

pub use crate::layout::Creation as Destination;
