//! Reports: tables (and later plots) of accuracy versus Q.

pub mod table;
