//! EROFS image writer, byte-identical to C `mkcomposefs`. (Being implemented.)
