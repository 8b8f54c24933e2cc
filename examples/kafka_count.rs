//! The floor for Kafka ingest (`benches/kafka.sh`): a bare rdkafka consumer that reads every
//! partition of a topic from the beginning to its end with the same client settings linkmeter
//! uses, and only counts messages and payload bytes.
//!
//!     cargo run --release --example kafka_count -- localhost:9092 bench-flowlogs

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, topic] = args.as_slice() else {
        return Err("usage: kafka_count BOOTSTRAP TOPIC".into());
    };
    let t0 = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kafka-count")
        .set("fetch.queue.backoff.ms", "10")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    for &p in &parts {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut ended = std::collections::BTreeSet::new();
    while ended.len() < parts.len() {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                messages += 1;
                bytes += m.payload().map_or(0, |p| p.len() as u64);
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            Some(Err(e)) => eprintln!("consumer error: {e}"),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "messages={messages} bytes={bytes} seconds={secs:.2} messages_per_s={:.0}",
        messages as f64 / secs
    );
    Ok(())
}
