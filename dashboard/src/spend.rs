//! What a run's log says it spent: the model and the estimated cost of its responses.

use keel_engine::Event;
use keel_providers::pricing::PriceTable;

/// Spending folded from a run's events, in order; [`Spend::add`] one event at a
/// time, so a known prefix need not be read again.
#[derive(Clone, Debug, Default)]
pub struct Spend {
    /// The seq after the last event added.
    pub next: u64,
    /// The run's model (from its first event).
    pub model: Option<String>,
    /// The estimated cost in US dollars; `None` when a response's model has no
    /// known price (the total would be wrong, so it is unknown).
    pub usd: Option<f64>,
    responses: u32,
}

impl Spend {
    /// Adds the event at `seq`.
    pub fn add(&mut self, prices: &PriceTable, seq: u64, event: &Event) {
        match event {
            Event::RunStarted(s) => self.model = Some(s.agent.model.clone()),
            Event::LlmResponded { response, .. } => {
                let usd = prices
                    .estimate(&response.model, &response.usage)
                    .or_else(|| prices.estimate(self.model.as_deref()?, &response.usage))
                    .map(|c| c.total());
                self.usd = match (self.responses, self.usd, usd) {
                    (0, _, Some(b)) => Some(b),
                    (_, Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
                self.responses += 1;
            }
            _ => {}
        }
        self.next = seq + 1;
    }
}
