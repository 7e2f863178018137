from video_miner.synth import DEMO_CLIPS


rule demo_video:
    output:
        # local(): the demo's stand-ins for a user's own videos and models, read in place
        # also when the run's files are on object storage
        local("resources/demo/{clip}.{ext}"),
    log:
        "logs/demo/{clip}.{ext}.log",
    wildcard_constraints:
        clip="|".join(DEMO_CLIPS),
        ext="mp4|webm",
    conda:
        "../envs/demo.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/demo_video.py"


rule demo_model:
    output:
        local(directory("resources/models/{name}")),
    log:
        "logs/demo/model_{name}.log",
    wildcard_constraints:
        name="siglip2|siglip|dinov2|grounding_dino|owlv2|florence2|sam|clip|whisper",
    conda:
        "../envs/models.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/demo_model.py"
