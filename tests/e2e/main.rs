//! End-to-end tests: one test binary (so the test build links DataFusion, Delta and
//! rdkafka once), a module per command or area. They run the real `linkmeter` binary against
//! real servers (a Kafka-protocol broker and an S3-compatible server that `.ci/test` starts;
//! see `.ci/services.sh`), with shared helpers in the `linkmeter-test-support` crate.

#[cfg(feature = "ballista")]
mod ballista;
mod close;
mod ddl;
mod estimate;
mod hostile;
mod ingest;
mod inventory;
mod invoice;
mod kafka;
mod kafka_broker;
mod metrics;
mod preaggregates;
mod readers;
mod reconcile;
mod report;
mod rollup;
mod run;
mod s3;
mod s3_faults;
mod scenario;
mod sql;
