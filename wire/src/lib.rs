//! What arrives over the network, parsed and checked with no I/O: [`sigv4`] (AWS Signature
//! Version 4, which SDK clients of the Firehose API sign with), [`firehose`] (the Firehose
//! API's and its HTTP endpoint delivery's request bodies) and [`console`] (the web console's
//! forms and query strings). The HTTP adapters (`scheduler`'s ingest routes and console) call
//! these and map a refusal to their answer; the fuzz targets call them alone, without the
//! service stack around them.

pub mod console;
pub mod firehose;
pub mod sigv4;
