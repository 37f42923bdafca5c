// The web UI's files (controller/ui/), built into the binary so that `stampede serve` and the
// operator need nothing beside it. controller/ui/embed.cmake generates ui_assets.cc.
#ifndef STAMPEDE_CONTROLLER_UI_ASSETS_H_
#define STAMPEDE_CONTROLLER_UI_ASSETS_H_

#include <string_view>
#include <vector>

namespace stampede::controller {

struct UiAsset {
  std::string_view name;  // "index.html", "app.js", "app.css"
  std::string_view content_type;
  std::string_view body;
};

const std::vector<UiAsset>& UiAssets();

// The asset named `name`, or nullptr.
inline const UiAsset* FindUiAsset(std::string_view name) {
  for (const UiAsset& a : UiAssets()) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

}  // namespace stampede::controller

#endif  // STAMPEDE_CONTROLLER_UI_ASSETS_H_
