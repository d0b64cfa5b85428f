//! Split streams (work in progress; see `../shared/spec/repository.md` §11).
pub type SplitStreamError = std::io::Error; // placeholder until the module lands
