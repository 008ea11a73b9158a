# Build each target (model, data, optimum w*) once; every sampler reads the same artifacts.
# Its plot shows the student at w* against the teacher, and the training curve.


rule build_target:
    input:
        target_sources,
    output:
        experiment=f"{TARGET_DIR}/experiment.yaml",
        arrays=f"{TARGET_DIR}/target.npz",
        record=f"{TARGET_DIR}/target.json",
    params:
        config=build_config,
        x64=target_x64,
        **setting_params("target"),
    log:
        BUILD_LOG,
    benchmark:
        "benchmarks/{experiment}/build/{target}.tsv"
    threads: 1
    shell:
        "printf '%s' {params.config:q} > {output.experiment} && "
        "JAX_COMPILATION_CACHE_DIR=.jax_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 "
        "JAX_ENABLE_X64={params.x64} "
        "lambda-hat --threads {threads} build --config {output.experiment} "
        "--target {wildcards.target} --out $(dirname {output.record}) > {log} 2>&1"


rule plot_target:
    input:
        arrays=f"{TARGET_DIR}/target.npz",
        record=f"{TARGET_DIR}/target.json",
    output:
        report(
            f"{PLOT_DIR}/targets/{{target}}.png",
            caption="../report/target.rst",
            category="Targets",
            labels={"target": "{target}"},
        ),
    log:
        "logs/{experiment}/plot_target/{target}.log",
    benchmark:
        "benchmarks/{experiment}/plot_target/{target}.tsv"
    threads: 1
    shell:
        "lambda-hat plot-target --target-dir $(dirname {input.record}) --out {output} "
        "> {log} 2>&1"
