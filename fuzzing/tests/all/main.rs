//! The fuzz targets' short run for CI (corpus replay plus seeded random inputs) and the
//! differential test against wasmi.

mod corpus;
mod differential;
mod regressions;
