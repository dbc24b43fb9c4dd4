# The paper suite on a GPU. Build and run (mount every folder whose contents must outlive the container):
#   docker build -t ssd .
#   docker run --gpus all -v $PWD/data:/workspace/ssd/data -v $PWD/checkpoints:/workspace/ssd/checkpoints \
#     -v $PWD/results:/workspace/ssd/results -v $PWD/cache:/workspace/ssd/cache \
#     -v $PWD/weights:/workspace/ssd/weights:ro ssd            # = ./MAIN_run_experiments.sh 0
# results/ also holds the reports and the offline wandb runs (results/wandb); cache/ holds SSD's
# importances and the retrained reference models.
#
# CUDA: the pinned torch (2.14.1+cu130, requirements.txt) brings its own CUDA 13.0 libraries
# (cuBLAS, cuDNN 9, NCCL, ... as pip wheels), so the image needs only the CUDA 13.0 base layer;
# it declares NVIDIA_REQUIRE_CUDA=cuda>=13.0, so the NVIDIA container toolkit refuses a host
# driver that is too old. Host driver: >= 580 (the CUDA 13.0 minimum on Linux).
FROM nvidia/cuda:13.0.2-base-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 WANDB_MODE=offline
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common git \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /workspace/ssd
COPY requirements.txt .
RUN python3.11 -m venv /opt/venv && /opt/venv/bin/pip install -r requirements.txt
ENV PATH=/opt/venv/bin:$PATH SSD_VENV=/opt/venv PYTHONPATH=/workspace/ssd
# .dockerignore keeps .venv, data, checkpoints, results, cache and wandb out of the image.
COPY . .
RUN echo "$(sha256sum requirements.txt | cut -d' ' -f1)" > /opt/venv/.requirements.sha256

# Data (CIFAR) is read from /workspace/ssd/data or $SSD_DATA_ROOT; see the run line above.
VOLUME ["/workspace/ssd/data", "/workspace/ssd/checkpoints", "/workspace/ssd/results", "/workspace/ssd/cache"]
ENTRYPOINT ["./MAIN_run_experiments.sh"]
CMD ["0"]
