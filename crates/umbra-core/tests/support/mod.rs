//! Shared pieces of the rollout tests: a store stand-in that keeps rollout state in memory.

/// Rollout state kept in memory (the store's stand-in for this test).
#[derive(Default)]
pub struct Memory(pub std::sync::Mutex<Vec<umbra_core::rollout::RolloutState>>);

impl umbra_core::rollout::RolloutBackend for Memory {
    fn save(
        &self,
        state: &umbra_core::rollout::RolloutState,
    ) -> futures_util::future::BoxFuture<'_, Result<(), String>> {
        let mut all = self.0.lock().unwrap();
        all.retain(|s| s.route != state.route);
        all.push(state.clone());
        Box::pin(async { Ok(()) })
    }

    fn load_all(
        &self,
    ) -> futures_util::future::BoxFuture<'_, Result<Vec<umbra_core::rollout::RolloutState>, String>>
    {
        let all = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(all) })
    }

    fn load(
        &self,
        route: &str,
    ) -> futures_util::future::BoxFuture<
        '_,
        Result<Option<umbra_core::rollout::RolloutState>, String>,
    > {
        let one = self
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.route == route)
            .cloned();
        Box::pin(async move { Ok(one) })
    }

    fn persist_route(
        &self,
        _: umbra_core::runtime::Persist,
    ) -> futures_util::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}
