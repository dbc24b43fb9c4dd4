# A CUDA image for the paper suite on a GPU: `docker build -t ssd . && docker run --gpus all ssd`
# (the torch wheels in requirements.txt bundle their CUDA libraries; the image supplies the runtime).
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

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
COPY . .
RUN echo "$(sha256sum requirements.txt | cut -d' ' -f1)" > /opt/venv/.requirements.sha256

# Data (CIFAR) is read from /workspace/ssd/data or $SSD_DATA_ROOT; mount it with -v.
ENTRYPOINT ["./MAIN_run_experiments.sh"]
CMD ["0"]
