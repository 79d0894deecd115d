/**
 * The sidebar's icon (theme-aware: `jp-icon3` follows the theme's icon colour).
 */
import { LabIcon } from '@jupyterlab/ui-components';

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="3" y="3" width="18" height="5" rx="1"/>
    <rect x="3" y="10" width="18" height="5" rx="1"/>
    <rect x="3" y="17" width="11" height="4" rx="1"/>
    <path d="M16 17.2 21 19l-5 1.8z"/>
  </g>
  <g fill="#fff" class="jp-icon-contrast0">
    <circle cx="6" cy="5.5" r="1"/>
    <circle cx="6" cy="12.5" r="1"/>
  </g>
</svg>`;

export const hpcmlIcon = new LabIcon({ name: 'jupyterlab-hpcml:submit', svgstr: svg });
