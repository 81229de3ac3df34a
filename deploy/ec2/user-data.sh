#!/bin/bash
# cloud-init user data for an EC2 instance (Debian or Ubuntu AMI) running the dropgz worker.
# Pass the settings through SSM Parameter Store (SecureString) named /dropgz/settings.cfg,
# readable by the instance role; see iam-policy.json.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q python3 python3-venv python3-pip awscli

id dropgz >/dev/null 2>&1 || useradd --system --home /var/lib/dropgz --create-home dropgz
install -d -o dropgz -g dropgz -m 700 /etc/dropgz /var/lib/dropgz

python3 -m venv /opt/dropgz/venv
# What to install: a wheel built with `pip wheel .` from this repository and copied to the
# instance (e.g. from S3), or a package index you publish to. Pin the release you deploy;
# the [isal] extra adds the fast compressor (compressor = isal).
DROPGZ_PACKAGE="${DROPGZ_PACKAGE:-/opt/dropgz/dropgz-0.1.0-py3-none-any.whl[isal]}"
/opt/dropgz/venv/bin/pip install --upgrade pip
/opt/dropgz/venv/bin/pip install "$DROPGZ_PACKAGE"

aws ssm get-parameter --region us-west-1 --with-decryption --name /dropgz/settings.cfg \
    --query Parameter.Value --output text > /etc/dropgz/settings.cfg
chown dropgz:dropgz /etc/dropgz/settings.cfg
chmod 600 /etc/dropgz/settings.cfg

# The same unit as deploy/ec2/dropgz-worker.service (user data must be self-contained).
cat > /etc/systemd/system/dropgz-worker.service <<'UNIT'
# systemd unit for the compression tier on EC2 (install: see README, "Deploying").
[Unit]
Description=dropgz compression tier (SQS -> gzip -> Dropbox)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=dropgz
Group=dropgz
WorkingDirectory=/var/lib/dropgz
# Settings: /etc/dropgz/settings.cfg (mode 600, owner dropgz). AWS keys may be left out of it:
# boto3 then uses the instance role (see iam-policy.json).
ExecStart=/opt/dropgz/venv/bin/dropgz worker --config /etc/dropgz/settings.cfg
# First SIGTERM: the worker stops receiving and finishes the files in flight. A large file may
# take minutes; give it that long before systemd sends SIGKILL. Messages of killed files
# come back after their SQS visibility timeout, so nothing is lost either way.
KillSignal=SIGTERM
TimeoutStopSec=900
Restart=on-failure
RestartSec=5
# Hardening: the worker needs the network and its working directory, nothing else.
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
ReadWritePaths=/var/lib/dropgz

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now dropgz-worker
