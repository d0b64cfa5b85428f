//! EROFS image reader: image → tree, validating everything. (Being implemented.)
