//! One module per command family.

pub(crate) mod composefs_info;
pub(crate) mod mkcomposefs;
