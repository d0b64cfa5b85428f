//! Unit tests of the reader on hand-made images.
