//! The distributed engine, Apache DataFusion Ballista: the client side of a catalog
//! (`[engine] kind = "ballista"`), and the scheduler and executor roles that
//! `linkmeter ballista scheduler|executor` serve. All three carry [`PinnedCodec`], so the
//! warehouse's tables travel in plans as pinned file lists; executors need only the object store.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::error::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;

use crate::pinned::PinnedCodec;

impl LogicalExtensionCodec for PinnedCodec<BallistaLogicalExtensionCodec> {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: arrow::datatypes::SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        match Self::decode(buf) {
            Some(t) => Ok(Arc::new(t?)),
            None => self
                .inner
                .try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        match Self::encode(node.as_ref()) {
            Some(bytes) => {
                buf.extend_from_slice(&bytes?);
                Ok(())
            }
            None => self.inner.try_encode_table_provider(table_ref, node, buf),
        }
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }
}

fn codec() -> Arc<dyn LogicalExtensionCodec> {
    Arc::new(PinnedCodec {
        inner: BallistaLogicalExtensionCodec::default(),
    })
}

/// The session settings every role uses: Ballista's, with the pinned-table codec.
pub fn session_config() -> SessionConfig {
    SessionConfig::new_with_ballista()
        .with_information_schema(true)
        .with_ballista_logical_extension_codec(codec())
        // Ballista 55's adaptive planner loses the sort order that window functions need
        // ("Expects PARTITION BY expression to be ordered" on the reconciliation view);
        // the static planner keeps it.
        .set_bool("ballista.planner.adaptive.enabled", false)
}

/// A session whose queries run on the cluster whose scheduler is at `url`
/// (`df://host:50050`); `runtime` holds the warehouse's object store.
pub async fn connect(url: &str, runtime: Arc<RuntimeEnv>) -> Result<SessionContext> {
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(session_config())
        .with_runtime_env(runtime)
        .build();
    SessionContext::remote_with_state(url, state).await
}

/// Serves a scheduler on `bind` until the process ends; `external_host` is the name executors
/// and clients reach it by. `runtime` holds the warehouse's object store (planning reads no
/// data, but DataFusion resolves the store of every scan).
pub async fn serve_scheduler(
    bind: SocketAddr,
    external_host: String,
    runtime: Arc<RuntimeEnv>,
) -> Result<(), String> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    let builder = move |config: SessionConfig| {
        let state = ballista_core::utils::default_session_builder(config)?;
        Ok(SessionStateBuilder::new_from_existing(state)
            .with_runtime_env(runtime.clone())
            .build())
    };
    let config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        bind_port: bind.port(),
        external_host,
        override_session_builder: Some(Arc::new(builder)),
        override_config_producer: Some(Arc::new(session_config)),
        override_logical_codec: Some(codec()),
        ..Default::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    ballista_scheduler::scheduler_process::start_server(cluster, bind, Arc::new(config))
        .await
        .map_err(|e| e.to_string())
}

/// Where an executor listens and whom it serves.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// Scheduler host and port.
    pub scheduler: (String, u16),
    /// Address to listen on (Arrow Flight for shuffle reads; gRPC on `grpc_port`).
    pub bind_host: String,
    /// Name others reach this executor by.
    pub external_host: Option<String>,
    /// Arrow Flight port.
    pub port: u16,
    /// gRPC port.
    pub grpc_port: u16,
    /// Tasks run at once.
    pub vcores: usize,
    /// Shuffle files go here (a temporary directory when unset).
    pub work_dir: Option<String>,
}

/// Serves an executor until the process ends.
pub async fn serve_executor(s: ExecutorSettings, runtime: Arc<RuntimeEnv>) -> Result<(), String> {
    use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
    let config = ExecutorProcessConfig {
        bind_host: s.bind_host,
        external_host: s.external_host,
        port: s.port,
        grpc_port: s.grpc_port,
        scheduler_host: s.scheduler.0,
        scheduler_port: s.scheduler.1,
        vcores: s.vcores.max(1),
        work_dir: s.work_dir,
        override_runtime_producer: Some(Arc::new(move |_| Ok(runtime.clone()))),
        override_config_producer: Some(Arc::new(session_config)),
        override_logical_codec: Some(codec()),
        // Ballista's default registry lacks the nested functions (`generate_series`, which
        // the rollups use): take every function a default session has.
        override_function_registry: Some(Arc::new(
            (&SessionStateBuilder::new().with_default_features().build()).into(),
        )),
        ..Default::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| e.to_string())
}
