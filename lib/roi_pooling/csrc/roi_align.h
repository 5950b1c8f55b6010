// RoIAlign on the CPU (roi_align.cpp), with torchvision.ops.roi_align's arithmetic; bound in roi_pool.cpp.
#pragma once

#include <ATen/ATen.h>

namespace frcnn_roi_align {

// features (N, C, H, W), rois (R, 5) [batch, x1, y1, x2, y2] -> (R, C, ph, pw)
at::Tensor forward_cpu(const at::Tensor& features, const at::Tensor& rois, int64_t ph, int64_t pw,
                       double spatial_scale, int64_t sampling_ratio, bool aligned);

// grad_output (R, C, ph, pw), rois (R, 5) -> grad_features (N, C, H, W)
at::Tensor backward_cpu(const at::Tensor& grad_output, const at::Tensor& rois, int64_t N, int64_t H, int64_t W,
                        double spatial_scale, int64_t sampling_ratio, bool aligned);

}  // namespace frcnn_roi_align
