"""Attribution: the teacher's word scores and the rationales chosen from them.

    engine.py      score every example by a method, shard by shard, cached (and split across processes)
    select.py      word scores from token scores, top-k rationales, recall@k
    gradients.py   saliency, saliency_stepwise, input_x_gradient, integrated_gradients (one batch at a time)
    occlusion.py   occlusion (one forward per word)
    reference.py   the step-wise loop the tests and benchmarks check the batched engine against

Which method exists and how it is called is `attrdistill.registry.methods`; nothing here dispatches on a name.
"""
