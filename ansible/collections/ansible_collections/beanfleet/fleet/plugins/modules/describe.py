"""Documentation of action beanfleet.fleet.describe (the action plugin does the work)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: describe
short_description: The fleet description as beanfleet.fleet sees it
description:
  - Runs on the controller and touches no host. Validates the role's settings with the
    Python package C(beanfleet) (C(beanfleet.fleet)) and returns its plan for the host
    (the files, links and directories to write, the worker instances, the values the
    templates use), or fails with every problem, one line each.
  - Needs C(beanfleet) importable by the Python that runs Ansible (pip install it next to
    ansible-core); without it the task fails with one line saying so.
  - The result holds the pools' environment (secrets) and is never printed.
version_added: "0.1.0"
author:
  - beanfleet
options:
  part:
    description:
      - C(workers) (role beanfleet, variables beanfleet_*), C(queue) (role beanstalkd,
        variables beanstalkd_*) or C(monitor) (role monitoring, the Prometheus host, which reads the
        whole description since its rules name the fleet's pools and tubes). All three
        read the shared monitoring_* settings.
    type: str
    required: true
    choices: [workers, queue, monitor]
"""

EXAMPLES = r"""
- name: Describe the worker pools
  beanfleet.fleet.describe:
    part: workers
  register: __beanfleet_model
"""

RETURN = r"""
files:
  description: The templates to write (path, template, mode, owner, group, pool, secret).
  returned: success
  type: list
  elements: dict
directories:
  description: The directories to create (path, mode).
  returned: success
  type: list
  elements: dict
"""
