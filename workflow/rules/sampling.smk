# One job per (target, sampler): sample, then draw that run's diagnostic plots (and, with
# exports: {arviz: true}, write its ArviZ InferenceData).


rule sample:
    input:
        arrays=f"{TARGET_DIR}/target.npz",
        record=f"{TARGET_DIR}/target.json",
    output:
        experiment=f"{RUN_DIR}/experiment.yaml",
        trace=f"{RUN_DIR}/trace.npz",
        summary=f"{RUN_DIR}/summary.json",
    params:
        config=sample_config,
        x64=sampler_x64,
        **setting_params("sampler"),
    log:
        SAMPLE_LOG,
    benchmark:
        "benchmarks/{experiment}/sample/{target}/{sampler}.tsv"
    group:
        "runs"
    threads: 1
    shell:
        "printf '%s' {params.config:q} > {output.experiment} && "
        "JAX_COMPILATION_CACHE_DIR=.jax_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 "
        "JAX_ENABLE_X64={params.x64} "
        "lambda-hat --threads {threads} sample --config {output.experiment} "
        "--target-dir $(dirname {input.record}) --sampler {wildcards.sampler} "
        "--out $(dirname {output.summary}) > {log} 2>&1"


rule plot_run:
    input:
        trace=f"{RUN_DIR}/trace.npz",
        summary=f"{RUN_DIR}/summary.json",
    output:
        report(
            f"{PLOT_DIR}/runs/{{target}}/{{sampler}}.png",
            caption="../report/run.rst",
            category="Runs",
            subcategory="{target}",
            labels={"target": "{target}", "sampler": "{sampler}"},
        ),
    log:
        "logs/{experiment}/plot_run/{target}/{sampler}.log",
    benchmark:
        "benchmarks/{experiment}/plot_run/{target}/{sampler}.tsv"
    group:
        "runs"
    threads: 1
    shell:
        "lambda-hat plot-run --run-dir $(dirname {input.summary}) --out {output} > {log} 2>&1"


rule export_arviz:
    input:
        trace=f"{RUN_DIR}/trace.npz",
        summary=f"{RUN_DIR}/summary.json",
    output:
        f"{RUN_DIR}/trace.nc",
    log:
        "logs/{experiment}/export_arviz/{target}/{sampler}.log",
    benchmark:
        "benchmarks/{experiment}/export_arviz/{target}/{sampler}.tsv"
    group:
        "runs"
    threads: 1
    shell:
        "lambda-hat export-arviz --run-dir $(dirname {input.summary}) --out {output} > {log} 2>&1"
