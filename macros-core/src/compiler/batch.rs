//! The batch API's items: `<Query>::batch()` and `<Query>Batch`, the query run once over
//! bounded inputs (`flowgate::engine::batch::BatchJob`), with one setter per input.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Ident;

use super::ast::{ModeKind, Query};
use super::plan::{OperatorKind, Plan};

impl Plan {
    /// Whether a batch run needs its end-of-input run (the plan once more without input at a
    /// watermark past every event time): only where the declared mode emits rows when the
    /// watermark passes them (append and update mode with a watermark) and no group-state
    /// function would see its timeouts fire (Spark's batch never fires them).
    pub fn batch_finishes(&self) -> bool {
        !self.watermarks.is_empty()
            && self.mode != ModeKind::Complete
            && !self.operators.iter().any(|o| matches!(o.kind, OperatorKind::GroupState(_)))
    }
}

/// `impl Name { fn batch() }` and the `NameBatch` struct with its setters.
pub fn items(q: &Query, finish: bool) -> TokenStream {
    let vis = &q.vis;
    let name = &q.name;
    let out = &q.output;
    let job = format_ident!("{}Batch", name);
    // An input named like a method of the job is the check phase's error; its setter is left
    // out so that the error is the only one.
    let inputs: Vec<(usize, &super::ast::Input)> = q
        .inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| !super::ops::BUILDER_METHODS.contains(&i.name.to_string().as_str()))
        .collect();
    let in_names: Vec<&Ident> = inputs.iter().map(|(_, i)| &i.name).collect();
    let in_tys: Vec<&syn::Type> = inputs.iter().map(|(_, i)| &i.ty).collect();
    let idx: Vec<usize> = inputs.iter().map(|(n, _)| *n).collect();
    let doc = format!(
        "[`{name}`] run once over bounded inputs, as a batch job (no checkpoint, no trigger): one setter per input, then `run()` (the output records), `run_batches()` or `write(sink)`."
    );
    let setter_docs: Vec<String> = in_names.iter().map(|n| format!("The source of input `{n}`, read whole.")).collect();
    quote! {
        impl #name {
            /// Runs this query once over bounded inputs (Spark's batch query over
            /// `spark.read`): every input read whole, the result returned or written once.
            #[allow(dead_code)]
            pub fn batch() -> #job {
                #job { inner: ::flowgate::engine::batch::BatchJob::new(Self::spec(), #finish) }
            }
        }

        #[doc = #doc]
        #vis struct #job {
            inner: ::flowgate::engine::batch::BatchJob,
        }

        #[allow(dead_code)]
        impl #job {
            #(
                #[doc = #setter_docs]
                pub fn #in_names(mut self, source: impl ::core::convert::Into<::flowgate::Source<#in_tys>>) -> Self {
                    self.inner.set_source(#idx, source.into());
                    self
                }
            )*
            ::flowgate::__batch_job_methods!(#job, #out);
        }
    }
}
