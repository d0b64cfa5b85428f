//! composefs-dump(5): the text format of `mkcomposefs --from-file` and
//! `composefs-info dump`. (Being implemented.)
