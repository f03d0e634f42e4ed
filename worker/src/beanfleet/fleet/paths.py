"""Where things live on the fleet's hosts: directories, files, programs, users (not settings).

Owns the on-host paths the plans name and the templates receive.  Imports nothing.
"""

from __future__ import annotations

HOME = "/opt/beanfleet"
VENV = f"{HOME}/venv"
EXPORTER_VENV = f"{HOME}/exporter-venv"
WHEELHOUSE_DEST = f"{HOME}/wheelhouse"
STATE_DIR = "/var/lib/beanfleet"
USER = "beanfleet"
POOL_DIR = "/etc/beanfleet/pools"
UNIT_DIR = "/etc/systemd/system"
SUPERVISOR_DIR = "/etc/supervisor/conf.d"
BEANSTALKD_DROPIN = "/etc/systemd/system/beanstalkd.service.d/beanfleet.conf"
NFT_FILE = "/etc/beanfleet/beanstalkd.nft"
NFT_TABLE = "inet beanfleet_beanstalkd"
NFT = "/usr/sbin/nft"
SETPRIV = "/usr/bin/setpriv"
METRICS_NFT_FILE = "/etc/beanfleet/metrics.nft"
METRICS_NFT_TABLE = "inet beanfleet_metrics"
# Worker metrics: every worker process of a host writes its files here (StateDirectory=).
METRICS_DIR = f"{STATE_DIR}/metrics"
PROMETHEUS_DIR = "/etc/prometheus"
PROMTOOL = "/usr/bin/promtool"
PROMETHEUS_PORT = 9090
