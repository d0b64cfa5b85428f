//! Unit tests of the composefs-dump parser and printers.
